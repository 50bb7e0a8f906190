"""Every wire between our processes: ZeroMQ sockets, msgspec messages, endpoint strings.

``ipc.sockets`` is the only importer of zmq (import it only where sockets are opened);
``ipc.messages`` holds the schemas and the error tree; ``ipc.bitunix`` is the venue's wire and
never touches ZeroMQ. This package never imports ``shm`` or ``procs``.

Errors::

    IpcError
    ├── DecodeError      ipc.messages: a payload that is not a valid message; carries the topic
    └── EndpointError    ipc.endpoints: a malformed or disallowed endpoint string
"""

from __future__ import annotations

from ipc.endpoints import EndpointError
from ipc.messages import DecodeError, IpcError

__all__ = ["DecodeError", "EndpointError", "IpcError"]
