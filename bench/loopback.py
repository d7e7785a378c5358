"""The loopback server every throughput figure is measured against, and how busy it is.

A bare HTTP/1.1 keep-alive server on an asyncio `Protocol` (on uvloop when installed): it reads each request's
`Content-Length` body and answers a fixed JSON refund. It does no routing and no parsing beyond that, so it is
much cheaper per request than any client under test; its own capacity is measured and reported beside them.

`python bench/loopback.py` serves on 127.0.0.1 (a free port, printed on the first line) until killed.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["ANSWER", "Loopback"]

# The smallest answer chargebee.refund_invoice's 200 documents (its required fields): what a real server
# sends fits its spec, so the engine's response check takes its usual path, the one for a valid answer.
ANSWER = (
    b'{"invoice":{"id":"inv_1","customer_id":"cus_1","status":"paid","currency_code":"USD",'
    b'"price_type":"tax_exclusive"},"transaction":{"id":"txn_1","currency_code":"USD","gateway":"chargebee",'
    b'"payment_method":"card","type":"refund"}}'
)
_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
    + str(len(ANSWER)).encode()
    + b"\r\n\r\n"
    + ANSWER
)


class _Refunds(asyncio.Protocol):
    """Answers every complete request in the buffer; a request split over reads waits for the rest."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # uvloop's transports are not asyncio.Transport subclasses

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        answers = 0
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            head = bytes(buffer[:end]).lower()
            length = 0
            at = head.find(b"\r\ncontent-length:")
            if at >= 0:
                stop = head.find(b"\r\n", at + 2)
                length = int(head[at + 17 : stop if stop >= 0 else len(head)])
            if len(buffer) < end + 4 + length:
                break
            del buffer[: end + 4 + length]
            answers += 1
        if answers and self._transport is not None:
            self._transport.write(_RESPONSE * answers)


def serve() -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(_Refunds, "127.0.0.1", 0, backlog=1024)
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


class Loopback:
    """The server in its own process; `cpu_seconds` is its CPU time so far (user + system)."""

    def __init__(self) -> None:
        self._process = subprocess.Popen([sys.executable, __file__], stdout=subprocess.PIPE, text=True)
        assert self._process.stdout is not None
        self.url = f"http://127.0.0.1:{self._process.stdout.readline().strip()}"

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self._process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        self._process.terminate()
        self._process.wait()

    def __enter__(self) -> Loopback:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


if __name__ == "__main__":
    serve()
