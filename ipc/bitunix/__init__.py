"""Bitunix futures wire: signing, schemas, errors, async REST client and WS client.

Importing the package does not import picows or aiohttp: take ``BitunixWs`` from
``ipc.bitunix.ws`` and ``BitunixRest`` from ``ipc.bitunix.rest_api``.
"""

from __future__ import annotations

from ipc.bitunix.book import LocalBook
from ipc.bitunix.errors import (
    BitunixError,
    DecodeError,
    DuplicateClientId,
    InsufficientBalance,
    IpWhitelistError,
    ModeChangeBlocked,
    OrderNotFound,
    ParameterError,
    RateLimited,
    ServerError,
    SignatureError,
    TransportError,
    UnknownOutcome,
    VenueError,
)
from ipc.bitunix.requests import ModifyOrder, PlaceOrder, TpslRequest, new_client_id
from ipc.bitunix.ws_dispatch import BookUpdate, WsDispatcher

__all__ = [
    "BitunixError",
    "BookUpdate",
    "DecodeError",
    "DuplicateClientId",
    "InsufficientBalance",
    "IpWhitelistError",
    "LocalBook",
    "ModeChangeBlocked",
    "ModifyOrder",
    "OrderNotFound",
    "ParameterError",
    "PlaceOrder",
    "RateLimited",
    "ServerError",
    "SignatureError",
    "TpslRequest",
    "TransportError",
    "UnknownOutcome",
    "VenueError",
    "WsDispatcher",
    "new_client_id",
]
