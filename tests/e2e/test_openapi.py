"""Each service's /openapi.json against the service itself, with schemathesis: generated
requests for every operation, no server error and no answer that breaks its documented schema.
The gateway is driven through its merged public document, as an administrator. Also: the
documents are OpenAPI 3.1 and list every route, /docs is served without any CDN, and the
AsyncAPI document names every exchange and queue.

`make test` runs the quick pass: one example per operation (positive and negative), the
gateway's own operations plus one forwarded path per service (the services' own runs cover the
rest). `make test-openapi-deep` (TWINBILL_SCHEMATHESIS_DEEP=1) runs 25 examples per operation,
the coverage phase, the stateful phase (the documents' create -> get/put/delete links) and the
gateway's whole merged document. Full reports go to test-artifacts/openapi/."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Platform

ST = str(Path(sys.executable).parent / "st")
DEEP = os.environ.get("TWINBILL_SCHEMATHESIS_DEEP", "") not in ("", "0")
EXAMPLES = int(os.environ.get("TWINBILL_SCHEMATHESIS_EXAMPLES", "25" if DEEP else "1"))
PHASES = "examples,coverage,fuzzing,stateful" if DEEP else "examples,fuzzing"
ARTIFACTS = Path(__file__).parents[2] / "test-artifacts" / "openapi"
# The gateway's own sign-in and user administration are fuzzed in their own tests; here they would
# lock the test's address or deactivate the administrator the rest of the run signs in as.
GATEWAY_EXCLUDED = r"^/(api/v1/auth/|api/v1/users/|bemserver/auth/|bemserver/users/)"
# Quick pass through the gateway: what it answers itself, and one forwarded path per service.
GATEWAY_QUICK = (r"^/(bemserver/(user_groups|users_by_user_groups|about)|healthz|readyz|openapi\.json|docs|"
                 r"api/v1/scheduler/tasks/$|api/v1/tariffs/$|dt/open/v1/instances$|bemserver/campaigns/$)")


async def schemathesis(name: str, url: str, *extra: str) -> tuple[int, str]:
    """Run `st run` on a document; its exit status and its report (kept in test-artifacts)."""
    process = await asyncio.create_subprocess_exec(
        ST, "run", f"{url}/openapi.json", "--checks", "not_a_server_error,response_schema_conformance",
        "--max-examples", str(EXAMPLES), "--phases", PHASES, "--seed", "15",
        "--request-timeout", "30", "--no-color", "--generation-database", "none", *extra,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(process.communicate(), timeout=3000 if DEEP else 600)
    report = out.decode(errors="replace")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / f"{name}.txt").write_text(report)
    return process.returncode or 0, report


def failures_of(report: str) -> str:
    """The report's failures section (each with its curl to reproduce), else its summary."""
    found = re.search(r"=+ FAILURES =+\n(.*?)\n=+ (WARNINGS|SUMMARY) =+", report, re.S)
    return (found.group(1) if found else report)[-8000:]


@pytest.mark.timeout(3600 if DEEP else 900)
async def test_every_service_answers_its_own_document(platform: Platform) -> None:
    """Zero server errors and zero answers outside their schema, service by service."""
    auth = "Basic " + base64.b64encode(f"{ADMIN_EMAIL}:{ADMIN_PASSWORD}".encode()).decode()
    runs = {name: schemathesis(name, platform.url(name)) for name in ("twin", "scheduler", "billing", "ingest")}
    gateway = ("--header", f"Authorization:{auth}", "--exclude-path-regex", GATEWAY_EXCLUDED)
    runs["gateway"] = schemathesis("gateway", platform.url("gateway"), *gateway,
                                   *(() if DEEP else ("--include-path-regex", GATEWAY_QUICK)))
    failed = []
    for name, run in runs.items():
        status, report = await run
        summary = re.search(r"(\d+) generated", report)
        print(f"----- {name}: {summary.group(0) if summary else 'no cases'}, exit {status}")
        if status != 0 or summary is None:
            print(failures_of(report))
            failed.append(name)
    assert not failed, f"schemathesis found problems in {failed} (reports: {ARTIFACTS})"


async def test_documents_list_every_route_and_docs_are_self_hosted(platform: Platform) -> None:
    """OpenAPI 3.1 from every service; the gateway's merges the forwarded paths without /internal/;
    /docs loads Swagger UI from the gateway itself."""
    async with aiohttp.ClientSession() as http:
        documents: dict[str, Any] = {}
        for name in ("twin", "scheduler", "billing", "ingest", "gateway"):
            async with http.get(f"{platform.url(name)}/openapi.json") as response:
                assert response.status == 200
                documents[name] = await response.json()
            assert documents[name]["openapi"] == "3.1.0"
        assert "/internal/v1/devices" in documents["twin"]["paths"]
        assert "/api/v1/scheduler/task/" in documents["scheduler"]["paths"]
        gateway = documents["gateway"]
        assert "x-twinbill-missing" not in gateway
        paths = gateway["paths"]
        assert not [p for p in paths if p.startswith("/internal/") or p == "/metrics"]
        for expected in ("/api/v1/scheduler/tasks/", "/api/v1/scheduler/history/", "/dt/open/v1/instances",
                         "/bemserver/timeseries/", "/api/v1/auth/token", "/api/v1/auth/logout"):
            assert expected in paths, expected
        task = paths["/api/v1/scheduler/task/"]["post"]
        body = task["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        assert body == "#/components/schemas/scheduler_TaskCreate"
        assert set(gateway["components"]["securitySchemes"]) == {"bearer", "basic", "token"}
        async with http.get(f"{platform.url('gateway')}/docs") as response:
            page = await response.text()
        assert response.status == 200 and "/console/vendor/swagger-ui/swagger-ui-bundle.js" in page
        assert "http://" not in page and "https://" not in page  # nothing from a CDN
        async with http.get(f"{platform.url('gateway')}/console/vendor/swagger-ui/swagger-ui-bundle.js") as response:
            assert response.status == 200 and len(await response.read()) > 100_000
