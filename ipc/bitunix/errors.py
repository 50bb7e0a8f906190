"""Bitunix error tree, mapped from the ``{code, msg, data}`` envelope and transport failures.

::

    BitunixError                      base; ``code`` (int, 0 when not from the venue), ``msg``
    ├── RateLimited                   10005, 10006: back off, then retry (GETs do it themselves)
    ├── SignatureError                10007: a signing bug; never retried blindly
    ├── AuthError                     10003 (empty api-key)
    │   └── IpWhitelistError          10004
    ├── ParameterError                10002, 10008, 20005, 30005-30041 (price, qty, TP/SL rules)
    ├── InsufficientBalance           20003, 20008
    ├── OrderNotFound                 20007, 30004 (position does not exist)
    ├── DuplicateClientId             30042
    ├── ModeChangeBlocked             20006, 20009
    ├── TradingNotAllowed             20001, 20002, 20011, 20012, 20015
    ├── VenueError                    any other non-zero code
    ├── ServerError                   HTTP 5xx (and 10001 network error)
    ├── TransportError                connection refused / reset before anything was sent
    ├── UnknownOutcome                timeout or drop on a non-idempotent call (place, cancel,
    │                                 modify...): the order may or may not exist; reconcile.
    │                                 (A GET raises it only after its retries ran out.)
    └── DecodeError                   a body or frame that is not the documented shape
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "AuthError",
    "BitunixError",
    "DecodeError",
    "DuplicateClientId",
    "InsufficientBalance",
    "IpWhitelistError",
    "ModeChangeBlocked",
    "OrderNotFound",
    "ParameterError",
    "RateLimited",
    "ServerError",
    "SignatureError",
    "TradingNotAllowed",
    "TransportError",
    "UnknownOutcome",
    "VenueError",
    "error_for_code",
]


class BitunixError(Exception):
    """Base of every error raised by ``ipc.bitunix``."""

    def __init__(self, msg: str = "", *, code: int = 0, endpoint: str = "") -> None:
        self.code = code
        self.msg = msg
        self.endpoint = endpoint
        where = f" endpoint={endpoint}" if endpoint else ""
        super().__init__(f"code={code} msg={msg!r}{where}")


class RateLimited(BitunixError):
    """The venue says too many requests (10005/10006): back off."""


class SignatureError(BitunixError):
    """The venue rejected the signature (10007): a bug in what was signed vs sent."""


class AuthError(BitunixError):
    """The API key is missing or not accepted."""


class IpWhitelistError(AuthError):
    """This host's IP is not in the API key's whitelist (10004)."""


class ParameterError(BitunixError):
    """A request parameter broke a venue rule."""


class InsufficientBalance(BitunixError):
    """Not enough balance or amount for the request."""


class OrderNotFound(BitunixError):
    """The order (or position) named does not exist."""


class DuplicateClientId(BitunixError):
    """The clientId was already used (30042): the earlier place did reach the venue."""


class ModeChangeBlocked(BitunixError):
    """Leverage, margin or position mode cannot change with open orders or positions."""


class TradingNotAllowed(BitunixError):
    """The market, symbol or account cannot trade, or a risk limit blocks it."""


class VenueError(BitunixError):
    """A non-zero code with no more specific class."""


class ServerError(BitunixError):
    """HTTP 5xx, or the venue's own network error (10001)."""


class TransportError(BitunixError):
    """The request could not be sent (connection refused or reset before sending)."""


class UnknownOutcome(BitunixError):
    """A non-idempotent call timed out or lost its connection: its effect is unknown."""


class DecodeError(BitunixError):
    """A response body or WS frame did not match the documented schema."""


_BY_CODE: Final[dict[int, type[BitunixError]]] = {
    10001: ServerError,
    10002: ParameterError,
    10003: AuthError,
    10004: IpWhitelistError,
    10005: RateLimited,
    10006: RateLimited,
    10007: SignatureError,
    10008: ParameterError,
    20001: TradingNotAllowed,
    20002: TradingNotAllowed,
    20003: InsufficientBalance,
    20005: ParameterError,
    20006: ModeChangeBlocked,
    20007: OrderNotFound,
    20008: InsufficientBalance,
    20009: ModeChangeBlocked,
    20011: TradingNotAllowed,
    20012: TradingNotAllowed,
    20015: TradingNotAllowed,
    30004: OrderNotFound,
    30042: DuplicateClientId,
}


def error_for_code(code: int, msg: str = "", *, endpoint: str = "") -> BitunixError:
    """Return the typed error for a non-zero envelope ``code``."""
    cls = _BY_CODE.get(code)
    if cls is None:
        cls = ParameterError if 30001 <= code <= 30041 else VenueError
    return cls(msg, code=code, endpoint=endpoint)
