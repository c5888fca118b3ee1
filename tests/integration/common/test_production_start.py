"""Each service's own entry point, started with TWINBILL_ENV=production on development defaults,
stops before serving (exit 2) and names the settings to set; the broker sidecar too."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

SERVICES = {
    "twinbill_gateway": ["GATEWAY_JWT_SECRET", "GATEWAY_ADMIN_PASSWORD", "TWINBILL_SERVICE_KEY",
                         "GATEWAY_PG_DSN"],
    "twinbill_twin": ["TWIN_DEVICE_SECRET_KEY", "TWINBILL_SERVICE_KEY", "TWIN_AMQP_URL", "TWIN_PG_DSN"],
    "twinbill_scheduler": ["TWINBILL_SERVICE_KEY", "SCHEDULER_AMQP_URL", "SCHEDULER_PG_DSN"],
    "twinbill_billing": ["TWINBILL_SERVICE_KEY", "BILLING_AMQP_URL", "BILLING_MONGO_URL"],
    "twinbill_ingest": ["TWINBILL_SERVICE_KEY", "INGEST_AMQP_URL", "INGEST_MQTT_PASSWORD"],
    "twinbill_ingest.brokerauth": ["TWINBILL_SERVICE_KEY", "TWINBILL_MQTT_SERVICE_PASSWORD"],
}


def _clean_env() -> dict[str, str]:
    prefixes = ("TWINBILL_", "GATEWAY_", "TWIN_", "SCHEDULER_", "BILLING_", "INGEST_")
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}


@pytest.mark.parametrize("module", sorted(SERVICES))
async def test_production_refuses_to_start_on_development_defaults(module: str) -> None:
    """Exit 2 within seconds, nothing served, every guarded setting named on stderr."""
    args = ["--out", "/nonexistent"] if module.endswith("brokerauth") else []
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", module, *args, env={**_clean_env(), "TWINBILL_ENV": "production"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 2, err
    text = err.decode()
    for name in SERVICES[module]:
        assert f"  {name}: still the development default" in text, text


async def test_development_starts_and_warns_naming_the_defaults(tmp_path: Path) -> None:
    """Without TWINBILL_ENV the same defaults are a warning at start (the broker sidecar, run
    once against a twin that is not there, logs it before failing to reach the registry)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "twinbill_ingest.brokerauth", "--out", str(tmp_path),
        "--twin-url", "http://127.0.0.1:9", env={**_clean_env(), "TWINBILL_MQTT_SERVICE_PASSWORD": "pw"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(process.communicate(), timeout=60)
    text = err.decode()
    assert "development defaults in use" in text and "TWINBILL_SERVICE_KEY" in text, text
    assert process.returncode == 1  # the registry is unreachable, not a settings error
