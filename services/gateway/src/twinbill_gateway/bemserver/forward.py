"""Everything of the BEMServer surface the twin serves (campaigns, structure, time series and
their data) is forwarded there, streamed both ways, with who the caller is and what they may
reach in trusted headers the gateway always sets itself (any the client sent are dropped)."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from twinbill_common.errors import HttpError
from twinbill_common.http import REQUEST_ID
from twinbill_gateway.bemserver.auth import caller
from twinbill_gateway.domain.access import AMBIGUOUS
from twinbill_gateway.keys import CLIENT, SETTINGS

PASSED_REQUEST = ("Content-Type", "Accept", "If-Match", "If-None-Match", "X-Request-Id")
PASSED_RESPONSE = ("Content-Type", "X-Pagination", "ETag", "X-Request-Id", "Location", "Content-Disposition")
CHUNK = 64 * 1024
# An answer up to this size (its length known) is read whole and sent in one write: a streamed
# one costs a write for the headers and one per chunk, each a trip through the loopback stack.
WHOLE = 256 * 1024


def access_headers(*, user_id: int, admin: bool, campaigns: frozenset[int], scopes: frozenset[int]) -> dict[str, str]:
    """The headers the twin's BEMServer surface trusts (it serves them only behind the gateway)."""
    return {"X-Twinbill-User": str(user_id), "X-Twinbill-Admin": "1" if admin else "0",
            "X-Twinbill-Campaigns": ",".join(map(str, sorted(campaigns))),
            "X-Twinbill-Scopes": ",".join(map(str, sorted(scopes)))}


async def forward_bemserver(request: web.Request) -> web.StreamResponse:
    """Authenticate, then stream the request to the twin and its answer back."""
    raw = request.rel_url.raw_path
    if any(part in (".", "..") for part in raw.split("/")) or AMBIGUOUS.search(raw):
        # the twin's URL would normalise to another path than this one (its /internal/, say)
        raise HttpError(404, "")
    who = await caller(request)
    headers = {name: request.headers[name] for name in PASSED_REQUEST if name in request.headers}
    headers["X-Request-Id"] = request[REQUEST_ID]  # one id in both services' logs, and in the answer
    headers.update(access_headers(user_id=who.user.id, admin=who.is_admin, campaigns=who.campaigns,
                                  scopes=who.scopes))
    url = f"{request.app[SETTINGS].twin_url}{request.rel_url}"
    body = request.content if request.body_exists else None
    try:
        async with request.app[CLIENT].request(request.method, url, data=body, headers=headers,
                                               allow_redirects=False,
                                               timeout=aiohttp.ClientTimeout(total=None, sock_read=300)) as upstream:
            passed = {name: upstream.headers[name] for name in PASSED_RESPONSE if name in upstream.headers}
            if upstream.content_length is not None and upstream.content_length <= WHOLE and request.method != "HEAD":
                return web.Response(status=upstream.status, body=await upstream.read(), headers=passed)
            response = web.StreamResponse(status=upstream.status, headers=passed)
            if upstream.content_length is not None:
                response.content_length = upstream.content_length
            await response.prepare(request)
            async for chunk in upstream.content.iter_chunked(CHUNK):
                await response.write(chunk)
            await response.write_eof()
            return response
    except (aiohttp.ClientError, TimeoutError) as err:
        raise HttpError(502, f"twin service did not answer: {type(err).__name__}") from None
