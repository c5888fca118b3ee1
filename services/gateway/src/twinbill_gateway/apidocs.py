"""The platform's public API description: `/openapi.json` merges the gateway's own routes with
the paths it forwards, read from each service's own `/openapi.json` (with the gateway's service
token, cached for a minute); `/docs` is Swagger UI over it, served from the gateway itself
(swagger-ui-dist from the npm registry, installed by `make install` into console/vendor/).

A forwarded path is one `domain.routing` sends to that service (so nothing under `/internal/`,
and no service's health or metrics), plus the twin's `/bemserver/` paths the gateway does not
answer itself. Component names are prefixed with the service (`twin_DeviceRead`) so equal names
cannot collide. A service that does not answer is left out and named in `x-twinbill-missing`.
"""

from __future__ import annotations

import json
import time
from importlib.metadata import version
from typing import Any

import aiohttp
from aiohttp import web

from twinbill_common.apidocs import documented, openapi_document
from twinbill_common.http import json_response
from twinbill_gateway.bemserver import PREFIX as BEMSERVER
from twinbill_gateway.console import CONSOLE, NO_CACHE
from twinbill_gateway.domain.routing import Upstream, upstream_for
from twinbill_gateway.keys import CLIENT, SETTINGS

CACHE_SECONDS = 60.0
PUBLIC = ("/api/v1/auth/token", "/api/v1/auth/token/refresh", "/bemserver/auth/token",
          "/bemserver/auth/token/refresh", "/bemserver/about/", "/healthz", "/readyz", "/openapi.json", "/docs")
SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
               "description": "an access token from POST /api/v1/auth/token"},
    "basic": {"type": "http", "scheme": "basic", "description": "email and password (BEMServer's clients)"},
    "token": {"type": "apiKey", "in": "header", "name": "Authorization",
              "description": "seed 000's API key: `token <user_id>:<40 hex>`"},
}
# the services' documents by base URL: (expires, document)
DOC_CACHE = web.AppKey("upstream_openapi", dict[str, tuple[float, dict[str, Any]]])


def _forwarded(upstream: Upstream, path: str) -> bool:
    if path.startswith(BEMSERVER + "/"):
        return upstream == "twin"
    return upstream_for(path) == upstream


def _prefixed(document: dict[str, Any], prefix: str) -> dict[str, Any]:
    text = json.dumps(document)
    for kind in ("schemas", "responses"):
        text = text.replace(f'"#/components/{kind}/', f'"#/components/{kind}/{prefix}_')
    renamed: dict[str, Any] = json.loads(text)
    for kind in ("schemas", "responses"):
        items = renamed.get("components", {}).get(kind, {})
        renamed.setdefault("components", {})[kind] = {f"{prefix}_{k}": v for k, v in items.items()}
    return renamed


async def _upstream_document(request: web.Request, upstream: Upstream, base: str) -> dict[str, Any] | None:
    cache = request.app[DOC_CACHE]
    cached = cache.get(base)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    try:
        async with request.app[CLIENT].get(f"{base}/openapi.json", timeout=aiohttp.ClientTimeout(total=5)) as got:
            if got.status != 200:
                return None
            document: dict[str, Any] = await got.json()
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return None
    cache[base] = (time.monotonic() + CACHE_SECONDS, document)
    return document


def _drop_dangling_links(paths: dict[str, Any]) -> None:
    """Links to an operation the merge left out (the gateway answers that path itself) go."""
    ids = {op.get("operationId") for operations in paths.values() for op in operations.values()}
    for operations in paths.values():
        for operation in operations.values():
            for response in operation.get("responses", {}).values():
                links = response.get("links")
                if links is None:
                    continue
                response["links"] = {k: v for k, v in links.items() if v["operationId"] in ids}
                if not response["links"]:
                    del response["links"]


@documented(summary="The platform's public OpenAPI 3.1 document (the gateway and what it forwards)",
            response=dict[str, Any], tags=("operations",))
async def merged_openapi(request: web.Request) -> web.Response:
    """GET /openapi.json."""
    settings = request.app[SETTINGS]
    document = openapi_document(request.app, title="twinbill public API", version=version("twinbill-gateway"),
                                description="Every path a client reaches through the API gateway.")
    own = document["paths"]
    for path in [p for p in own if p.startswith(("/console/", "/internal/")) or p == "/"]:
        del own[path]  # the console's files are pages, not API; /internal/ is for the services
    missing: list[str] = []
    upstreams: dict[Upstream, str] = {"twin": settings.twin_url, "scheduler": settings.scheduler_url,
                                      "billing": settings.billing_url}
    for upstream, base in upstreams.items():
        found = await _upstream_document(request, upstream, base.rstrip("/"))
        if found is None:
            missing.append(upstream)
            continue
        renamed = _prefixed(found, upstream)
        for path, operations in renamed["paths"].items():
            if not _forwarded(upstream, path):
                continue
            kept = {m: op for m, op in operations.items() if m not in own.get(path, {})}
            for operation in kept.values():
                operation["operationId"] = f"{upstream}_{operation['operationId']}"
                for response in operation.get("responses", {}).values():
                    for link in response.get("links", {}).values():
                        link["operationId"] = f"{upstream}_{link['operationId']}"
            if kept:
                own.setdefault(path, {}).update(kept)
        for kind in ("schemas", "responses"):
            document["components"][kind].update(renamed["components"][kind])
    document["paths"] = dict(sorted(own.items()))
    _drop_dangling_links(document["paths"])
    document["components"]["securitySchemes"] = SECURITY_SCHEMES
    document["security"] = [{"bearer": []}, {"basic": []}, {"token": []}]
    for path in PUBLIC:
        for operation in document["paths"].get(path, {}).values():
            operation["security"] = []
    if missing:
        document["x-twinbill-missing"] = missing
    return json_response(document)


@documented(summary="Swagger UI over /openapi.json", content_type="text/html", tags=("operations",))
async def docs_page(request: web.Request) -> web.FileResponse:
    """GET /docs: Swagger UI over /openapi.json (no CDN: the files are the gateway's own)."""
    return web.FileResponse(CONSOLE / "docs.html", headers=NO_CACHE)


def add_api_doc_routes(app: web.Application) -> None:
    """Mount /openapi.json and /docs (before the catch-all proxy)."""
    app[DOC_CACHE] = {}
    app.router.add_get("/openapi.json", merged_openapi)
    app.router.add_get("/docs", docs_page)
