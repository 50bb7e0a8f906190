"""Async Bitunix futures REST transport on aiohttp: signing, rate limits, retries, error mapping.

``BitunixRest`` (in ``rest_api.py``) adds one method per endpoint on top of ``RestTransport``.
Only idempotent GETs are retried (5xx, rate limit, timeout, dropped connection: capped
exponential backoff with jitter). A POST that times out or loses its connection after sending
raises ``UnknownOutcome``; one that could not connect raises ``TransportError``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Mapping
from decimal import Decimal
from typing import Annotated, Any, Final, Self
from urllib.parse import quote

import aiohttp
import msgspec
from yarl import URL

from ipc.bitunix.errors import (
    BitunixError,
    DecodeError,
    RateLimited,
    ServerError,
    TransportError,
    UnknownOutcome,
    VenueError,
    error_for_code,
)
from ipc.bitunix.fields import decoder
from ipc.bitunix.ratelimit import TokenBucket, limit_for
from ipc.bitunix.schemas_rest import Envelope
from ipc.bitunix.signing import compact_json, new_nonce, query_string, sign_rest

__all__ = ["RestConfig", "RestTransport", "plain_body"]

log = logging.getLogger(__name__)

PosFloat = Annotated[float, msgspec.Meta(gt=0)]
NonNegInt = Annotated[int, msgspec.Meta(ge=0)]

_ENVELOPE: Final = decoder(Envelope)
_RETRYABLE: Final = (ServerError, RateLimited, UnknownOutcome, TransportError)


class RestConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """REST client settings; ``base_url`` is simex on loopback or https://fapi.bitunix.com."""

    base_url: str = "https://fapi.bitunix.com"
    api_key: str = ""
    secret: str = ""
    timeout_s: PosFloat = 5.0
    get_retries: NonNegInt = 3
    backoff_base_s: PosFloat = 0.25
    backoff_max_s: PosFloat = 5.0
    rate_safety: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.8
    clock_offset_ms: int = 0
    pool_size: Annotated[int, msgspec.Meta(gt=0)] = 16
    language: str = "en-US"


class RestTransport:
    """Owns one aiohttp ``ClientSession`` (keep-alive pool); use on one event loop.

    Open with ``async with`` (or ``await open()``), close with ``await close()``. Counters for
    metrics: ``requests_total``, ``retries_total``, ``errors_total`` (by error class name),
    ``rate_limit_waits_total``.
    """

    def __init__(self, config: RestConfig, *, session: aiohttp.ClientSession | None = None):
        self.config = config
        self._base = config.base_url.rstrip("/")
        self._session = session
        self._own_session = session is None
        self._buckets: dict[str, TokenBucket] = {}
        self._decoders: dict[Any, msgspec.json.Decoder[Any]] = {}
        self.clock_offset_ms = config.clock_offset_ms
        self.requests_total = 0
        self.retries_total = 0
        self.errors_total: Counter[str] = Counter()

    async def open(self) -> None:
        """Create the session (keep-alive pool) unless one was injected."""
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self.config.pool_size, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(connector=connector)

    async def close(self) -> None:
        """Close the session if this client created it."""
        if self._session is not None and self._own_session:
            await self._session.close()
        self._session = None

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def rate_limit_waits_total(self) -> int:
        """Return how many requests waited for a token (instead of being rejected)."""
        return sum(b.waits_total for b in self._buckets.values())

    def now_ms(self) -> int:
        """Return the request timestamp: local clock plus the configured skew offset."""
        return time.time_ns() // 1_000_000 + self.clock_offset_ms

    def _bucket(self, path: str) -> TokenBucket:
        bucket = self._buckets.get(path)
        if bucket is None:
            bucket = TokenBucket.for_limit(limit_for(path), safety=self.config.rate_safety)
            self._buckets[path] = bucket
        return bucket

    def _decoder(self, typ: Any) -> msgspec.json.Decoder[Any]:
        dec = self._decoders.get(typ)
        if dec is None:
            dec = self._decoders[typ] = decoder(typ)
        return dec

    async def get(
        self,
        path: str,
        typ: Any,
        params: Mapping[str, object] | None = None,
        *,
        auth: bool = True,
    ) -> Any:
        """GET ``path`` with ``params`` (retried on transient failure); decode ``data``."""
        attempt = 0
        while True:
            try:
                data = await self._send("GET", path, params=params, body=None, auth=auth)
                return self._decode(path, typ, data)
            except _RETRYABLE as exc:
                if attempt >= self.config.get_retries:
                    raise
                delay = self._backoff_s(attempt)
                attempt += 1
                self.retries_total += 1
                log.warning(
                    "retrying path=%s attempt=%d delay_s=%.3f error=%r", path, attempt, delay, exc
                )
                await asyncio.sleep(delay)

    async def post(self, path: str, typ: Any, body: object) -> Any:
        """POST ``body`` (signed once, sent verbatim); never retried."""
        data = await self._send("POST", path, params=None, body=body, auth=True)
        return self._decode(path, typ, data)

    def _backoff_s(self, attempt: int) -> float:
        cap = min(self.config.backoff_max_s, self.config.backoff_base_s * (2**attempt))
        return float(cap) * (0.5 + random.random() / 2)

    def _decode(self, path: str, typ: Any, data: msgspec.Raw) -> Any:
        if typ is None:
            return None
        try:
            return self._decoder(typ).decode(data)
        except (msgspec.DecodeError, RecursionError) as exc:
            self.errors_total["DecodeError"] += 1
            raise DecodeError(str(exc), endpoint=path) from exc

    def _signed_headers(self, query: str, body: str) -> dict[str, str]:
        nonce, ts = new_nonce(), str(self.now_ms())
        sign = sign_rest(
            nonce=nonce,
            timestamp=ts,
            api_key=self.config.api_key,
            query=query,
            body=body,
            secret=self.config.secret,
        )
        return {
            "api-key": self.config.api_key,
            "nonce": nonce,
            "timestamp": ts,
            "sign": sign,
            "Content-Type": "application/json",
            "language": self.config.language,
        }

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, object] | None,
        body: object,
        auth: bool,
    ) -> msgspec.Raw:
        if self._session is None:
            raise RuntimeError("RestTransport is not open: use 'async with' or await open()")
        await self._bucket(path).acquire()
        clean = sorted(
            (k, _text(v)) for k, v in (params or {}).items() if v is not None and v != ""
        )
        url_text = self._base + path
        if clean:
            # the same sorted order that was signed; values percent-encoded only in the URL
            url_text += "?" + "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in clean)
        body_text = "" if body is None else compact_json(plain_body(body))
        headers = (
            self._signed_headers(query_string(dict(clean)), body_text)
            if auth
            else {"language": self.config.language}
        )
        if body is not None and not auth:
            headers["Content-Type"] = "application/json"
        self.requests_total += 1
        try:
            return await self._exchange(
                method,
                path,
                URL(url_text, encoded=True),
                headers,
                body_text.encode("utf-8") if body is not None else None,
            )
        except BitunixError as exc:
            self.errors_total[type(exc).__name__] += 1
            raise

    async def _exchange(
        self,
        method: str,
        path: str,
        url: URL,
        headers: dict[str, str],
        payload: bytes | None,
    ) -> msgspec.Raw:
        assert self._session is not None
        timeout = aiohttp.ClientTimeout(total=self.config.timeout_s)
        try:
            async with self._session.request(
                method, url, data=payload, headers=headers, timeout=timeout
            ) as resp:
                status = resp.status
                raw = await resp.read()
        except aiohttp.ClientConnectorError as exc:
            raise TransportError(f"connect failed: {exc}", endpoint=path) from exc
        except (TimeoutError, aiohttp.ClientError) as exc:
            what = "timeout" if isinstance(exc, TimeoutError) else f"connection lost: {exc!r}"
            raise UnknownOutcome(what, endpoint=path) from exc
        return _unwrap(path, status, raw)


def plain_body(body: object) -> object:
    """Return ``body`` as JSON builtins: Decimals in plain notation, str subclasses as str."""
    return _plain(msgspec.to_builtins(body, builtin_types=(Decimal,), enc_hook=str))


def _plain(obj: object) -> object:
    # the venue wants "0.00000001", never "1E-8"; ids/enums from responses are str subclasses
    if isinstance(obj, Decimal):
        return format(obj, "f")
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    return obj


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def _unwrap(path: str, status: int, raw: bytes) -> msgspec.Raw:
    if status >= 500:
        raise ServerError(f"HTTP {status}", code=status, endpoint=path)
    if status == 429:
        raise RateLimited(f"HTTP {status}", code=status, endpoint=path)
    try:
        env = _ENVELOPE.decode(raw)
    except (msgspec.DecodeError, RecursionError) as exc:  # RecursionError: nested too deep
        if status != 200:
            raise VenueError(f"HTTP {status}", code=status, endpoint=path) from exc
        raise DecodeError(f"bad envelope: {exc}", endpoint=path) from exc
    if env.code != 0:
        raise error_for_code(env.code, env.msg, endpoint=path)
    if status != 200:
        raise VenueError(f"HTTP {status} with code 0", code=status, endpoint=path)
    return env.data
