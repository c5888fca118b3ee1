"""A GET whose request line carries exactly the bytes given, as curl sends a query it does not
encode (seed 002's `?name=实例`, seed 000's `wm_type=自来水表`)."""

from __future__ import annotations

import asyncio
import json
from typing import Any


async def raw_get(host: str, port: int, target: bytes, headers: bytes = b"") -> tuple[int, Any]:
    """Send `GET <target> HTTP/1.1` and return the status and the JSON body."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"GET " + target + b" HTTP/1.1\r\nHost: " + host.encode() + b"\r\n" + headers
                 + b"Connection: close\r\n\r\n")
    await writer.drain()
    response = await reader.read()
    writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in head.lower():
        body = _unchunk(body)
    return int(head.split()[1]), json.loads(body)


def _unchunk(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2:]
    return out
