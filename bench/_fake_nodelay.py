"""Runs ``tests.fakes.fake_llm`` as a process, with TCP_NODELAY on its listening socket.

The fake builds its socket as ``socket(AF_INET, SOCK_STREAM)`` (``proto`` 0), so asyncio's
transport does not switch Nagle off on accepted connections (it only does for
``proto == IPPROTO_TCP``). uvicorn writes response headers and body separately, and the body
then waits for the client's delayed ACK: every direct request took ~44 ms instead of < 1 ms.
Real model servers don't do that, so the benchmarks start the fake through this shim (the
options are the fake's own: ``--port``, ``--default-chunks``, ``--default-delay``).
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fakes import fake_llm  # noqa: E402

_listen = fake_llm._listen


def _listen_nodelay(host: str, port: int) -> socket.socket:
    sock = _listen(host, port)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # inherited by accepted sockets
    return sock


fake_llm._listen = _listen_nodelay

if __name__ == "__main__":
    fake_llm.main()
