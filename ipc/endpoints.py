"""Endpoint strings: ``{run_dir}``/``{ns}`` templates, per-process defaults, validation.

Our endpoints are ``ipc://<path>`` under the run directory, ``tcp://127.0.0.1:<port>`` (loopback
unless explicitly allowed) and ``inproc://<name>`` (tests). Nothing here opens a socket.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ipc.messages import IpcError

__all__ = [
    "IPC_PATH_MAX_BYTES",
    "EndpointError",
    "ProcEndpoints",
    "default_endpoints",
    "expand",
    "ipc_path",
    "is_loopback_host",
    "is_remote",
    "validate",
]

# sockaddr_un.sun_path is 108 bytes including the NUL: a longer path fails at bind, or worse,
# is silently truncated by some libzmq builds
IPC_PATH_MAX_BYTES: Final = 106
_LOOPBACK_NAMES: Final = frozenset({"localhost"})


class EndpointError(IpcError):
    """A malformed or disallowed endpoint string."""


@dataclass(frozen=True, slots=True)
class ProcEndpoints:
    """The two endpoints every process binds: its PUB and its control REP."""

    pub: str
    ctl: str


def expand(template: str, *, run_dir: str | Path, ns: str) -> str:
    """Replace ``{run_dir}`` and ``{ns}`` in ``template``; other braces are left alone."""
    return template.replace("{run_dir}", str(run_dir)).replace("{ns}", ns)


def default_endpoints(run_dir: str | Path, proc: str) -> ProcEndpoints:
    """Return ``ipc://<run_dir>/<proc>.pub`` and ``ipc://<run_dir>/<proc>.ctl``, validated."""
    base = Path(run_dir).absolute()
    return ProcEndpoints(
        pub=validate(f"ipc://{base / proc}.pub"), ctl=validate(f"ipc://{base / proc}.ctl")
    )


def ipc_path(endpoint: str) -> Path | None:
    """Return the filesystem path of an ``ipc://`` endpoint, else None."""
    return Path(endpoint[len("ipc://") :]) if endpoint.startswith("ipc://") else None


def validate(endpoint: str, *, allow_remote: bool = False) -> str:
    """Return ``endpoint`` unchanged if it is one we accept.

    Raises
    ------
    EndpointError
        Unknown scheme, an ipc path of ``IPC_PATH_MAX_BYTES`` or more, a template left
        unexpanded, a bad tcp port, or a non-loopback tcp host without ``allow_remote``.
    """
    if "{" in endpoint or "}" in endpoint:
        raise EndpointError(f"endpoint has an unexpanded template: {endpoint!r}")
    scheme, sep, rest = endpoint.partition("://")
    if not sep or not rest:
        raise EndpointError(f"endpoint must look like scheme://address, was {endpoint!r}")
    if scheme == "ipc":
        size = len(rest.encode())
        if size > IPC_PATH_MAX_BYTES:
            raise EndpointError(
                f"ipc path must be at most {IPC_PATH_MAX_BYTES} bytes (sun_path), was {size}: "
                f"{endpoint!r}; use a shorter run_dir"
            )
        return endpoint
    if scheme == "tcp":
        _validate_tcp(endpoint, rest, allow_remote=allow_remote)
        return endpoint
    if scheme == "inproc":
        return endpoint
    raise EndpointError(f"endpoint scheme must be ipc, tcp or inproc, was {scheme!r}")


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (a name or an address, brackets allowed) is this machine's loopback."""
    bare = host.strip("[]")
    if bare in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(bare).is_loopback
    except ValueError:
        return False


def is_remote(endpoint: str) -> bool:
    """Whether ``endpoint`` is tcp on a host other than loopback (reachable from elsewhere)."""
    scheme, _, rest = endpoint.partition("://")
    return scheme == "tcp" and not is_loopback_host(rest.rpartition(":")[0])


def _validate_tcp(endpoint: str, rest: str, *, allow_remote: bool) -> None:
    host, sep, port = rest.rpartition(":")
    if not sep or not host:
        raise EndpointError(f"tcp endpoint must be tcp://host:port, was {endpoint!r}")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise EndpointError(f"tcp port must be 1-65535, was {port!r} in {endpoint!r}")
    if allow_remote:
        return
    if not is_loopback_host(host):
        raise EndpointError(
            f"tcp host must be loopback (127.0.0.1, ::1, localhost) unless remote endpoints "
            f"are explicitly allowed, was {host!r} in {endpoint!r}"
        )
