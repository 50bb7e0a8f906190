"""``python -m tests.helpers.bitunix_ws_blaster PORT N``: a picows server that greets each
client and then sends it N depth_book15 frames as fast as it can, for receive benchmarks.
Prints ``ready`` once listening; exits on stdin EOF.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import picows
import uvloop
from picows import WSListener, WSMsgType, WSTransport

from tests.helpers.bitunix_frames import depth_book15_frames


class _Blast(WSListener):
    def __init__(self, frames: list[bytes], n: int) -> None:
        self.frames = frames
        self.n = n

    def on_ws_connected(self, transport: WSTransport) -> None:
        transport.send(WSMsgType.TEXT, b'{"op":"connect","data":{"result":true}}')
        frames, m = self.frames, len(self.frames)
        for i in range(self.n):
            transport.send(WSMsgType.TEXT, frames[i % m])

    def on_ws_frame(self, transport: WSTransport, frame: Any) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            transport.disconnect()


async def main(port: int, n: int) -> None:
    frames = depth_book15_frames(1000)
    server = await picows.ws_create_server(lambda _r: _Blast(frames, n), "127.0.0.1", port)
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    server.close()
    await server.wait_closed()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1]), int(sys.argv[2])))
