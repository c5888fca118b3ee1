"""The project's own client and CLI against the running gateway and twin (not recorded answers):
token and API-key sign-in, the BEMServer entry points, streamed file upload and download with
progress, and failures printed as one line."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.integration.bemserver.conftest import ADMIN, Stack, call, unique
from twinbill_client import TwinbillAPIClient, TwinbillAPIPreconditionError, TwinbillAPIValidationError
from twinbill_client.cli import main


def _admin_client(bem: Stack) -> TwinbillAPIClient:
    return TwinbillAPIClient(f"127.0.0.1:{bem.gateway.port}", use_ssl=False,
                             authentication_method=TwinbillAPIClient.make_http_basic(*ADMIN))


async def _api_key(bem: Stack) -> str:
    made = await call(_admin_client(bem).request, "POST", "/api/v1/users/me/api_key")
    return str(made.data["authorization"]).removeprefix("token ")


async def test_client_signs_in_with_tokens_and_api_keys(bem: Stack) -> None:
    """Bearer tokens (BEMServer's pair) and a seed-000 API key both reach the BEMServer surface."""
    anonymous = TwinbillAPIClient(f"127.0.0.1:{bem.gateway.port}", use_ssl=False)
    tokens = (await call(anonymous.bem.get_tokens, *ADMIN)).data
    bearer = TwinbillAPIClient(f"127.0.0.1:{bem.gateway.port}", use_ssl=False,
                               authentication_method=TwinbillAPIClient.make_bearer_token_auth(
                                   tokens["access_token"], tokens["refresh_token"]))
    campaign = (await call(bearer.bem.campaigns.create, {"name": unique("cli"), "timezone": "UTC"})).data
    user, key = (await _api_key(bem)).split(":")
    keyed = TwinbillAPIClient(f"127.0.0.1:{bem.gateway.port}", use_ssl=False,
                              authentication_method=TwinbillAPIClient.make_api_key_auth(int(user), key))
    assert (await call(keyed.bem.campaigns.getone, campaign["id"])).data["name"] == campaign["name"]
    assert (await call(keyed.bem.about)).data["versions"]["bemserver_api"] == "0.26.0"
    renamed = await call(keyed.bem.campaigns.update, campaign["id"], {"name": campaign["name"] + "x",
                                                                      "timezone": "UTC"})
    assert renamed.data["name"].endswith("x")
    with pytest.raises(TwinbillAPIPreconditionError):
        await call(keyed.bem.campaigns.update, campaign["id"], {"name": "y", "timezone": "UTC"}, '"stale"')


async def test_files_stream_up_and_down_with_progress(bem: Stack, tmp_path: Path) -> None:
    """A CSV file is uploaded by names and downloaded again as CSV and JSON files, reporting
    progress up to the full size."""
    client = _admin_client(bem)
    campaign = (await call(client.bem.campaigns.create, {"name": unique("files"), "timezone": "UTC"})).data
    scope = (await call(client.bem.campaign_scopes.create, {"name": "s", "campaign_id": campaign["id"]})).data
    series = (await call(client.bem.timeseries.create, {"name": "Flow", "campaign_id": campaign["id"],
                                                        "campaign_scope_id": scope["id"]})).data
    lines = ["Datetime,Flow"] + [f"2026-02-01T00:{m:02d}:00+00:00,{m}.5" for m in range(60)]
    upload = tmp_path / "flow.csv"
    upload.write_text("\n".join(lines) + "\n")
    seen: list[tuple[int, int | None]] = []
    await call(client.bem.timeseries_data.upload_file, 1, upload, campaign_id=campaign["id"],
               progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (upload.stat().st_size, upload.stat().st_size)
    out = tmp_path / "out.csv"
    written = await call(client.bem.timeseries_data.download_file, out, "2026-02-01T00:00:00+00:00",
                         "2026-02-02T00:00:00+00:00", 1, [series["id"]])
    rows = out.read_text().splitlines()
    assert written == out.stat().st_size and len(rows) == 61
    assert rows[0] == f"Datetime,{series['id']}" and rows[1] == "2026-02-01T00:00:00+0000,0.5"
    as_json = tmp_path / "out.json"
    await call(client.bem.timeseries_data.download_file, as_json, "2026-02-01T00:00:00+00:00",
               "2026-02-02T00:00:00+00:00", 1, ["Flow"], campaign_id=campaign["id"], csv=False)
    assert '"Flow":{"2026-02-01T00:00:00+00:00":0.5,' in as_json.read_text()
    hourly = await call(client.bem.timeseries_data.download_aggregate, "2026-02-01T00:00:00+00:00",
                        "2026-02-01T01:00:00+00:00", 1, [series["id"]], aggregation="count")
    assert hourly.data == {str(series["id"]): {"2026-02-01T00:00:00+00:00": 60}}
    with pytest.raises(TwinbillAPIValidationError) as bad:
        await call(client.bem.timeseries_data.download, "2026-02-01T00:00:00+00:00",
                   "2026-02-02T00:00:00+00:00", 1, ["Nope"], campaign_id=campaign["id"])
    assert bad.value.errors == {"timeseries": ["Unknown timeseries name(s): Nope"]}


async def test_cli_prints_data_and_one_line_errors(bem: Stack, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI signs in with an API key, prints data as JSON, uploads with a progress bar, and
    reports a refused request or a bad argument as one line with the server's message."""
    host = f"127.0.0.1:{bem.gateway.port}"
    key = await _api_key(bem)
    base = ["--host", host, "--api-key", key]

    async def run(*args: str) -> tuple[int, str, str]:
        code = await asyncio.to_thread(main, [*base, *args])
        out, err = capsys.readouterr()
        return code, out, err

    name = unique("cli-campaign")
    code, out, _ = await run("bem.campaigns", "create", f'{{"name": "{name}", "timezone": "UTC"}}')
    assert code == 0 and f'"name": "{name}"' in out
    code, _, err = await run("bem.campaigns", "create", '{"name": "", "timezone": "Nowhere/Land"}')
    assert code == 1 and err.count("\n") == 1
    assert err.startswith("twinbill: 422 Unprocessable Entity (") and "name: Length must be between 1 and 80." in err
    code, _, err = await run("bem.campaigns", "create", '{"name": ')
    assert code == 2 and err.startswith("twinbill: bad argument:") and err.count("\n") == 1
    code, _, err = await run("bem.nothing", "getall")
    assert code == 2 and err.count("\n") == 1
    code, _, err = await run("bem.campaigns", "getone", "1", "2", "3")
    assert code == 2 and err.startswith("twinbill: bad argument:")
    code = await asyncio.to_thread(main, ["--host", "127.0.0.1:1", "bem.campaigns", "getall"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "ConnectionError" in err
    admin = _admin_client(bem)
    campaign = (await call(admin.bem.campaigns.getall, name=name)).data[0]
    scope = (await call(admin.bem.campaign_scopes.create, {"name": "s", "campaign_id": campaign["id"]})).data
    await call(admin.bem.timeseries.create, {"name": "T", "campaign_id": campaign["id"],
                                             "campaign_scope_id": scope["id"]})
    data = tmp_path / "t.csv"
    data.write_text("Datetime,T\n2026-02-01T00:00:00+00:00,1\n2026-02-01T00:00:01+00:00,x\n")
    code, _, err = await run("--progress", "bem.timeseries_data", "upload_file", "1", str(data),
                             f"campaign_id={campaign['id']}")
    assert code == 1 and "line 3" in err.splitlines()[-1]
    data.write_text("Datetime,T\n2026-02-01T00:00:00+00:00,1\n")
    code, _, err = await run("--progress", "bem.timeseries_data", "upload_file", "1", str(data),
                             f"campaign_id={campaign['id']}")
    assert code == 0 and "100%" in err
    code, _, err = await run("bem.timeseries_data", "upload_file", "1", str(tmp_path / "missing.csv"))
    assert code == 2 and "missing.csv" in err and err.count("\n") == 1


