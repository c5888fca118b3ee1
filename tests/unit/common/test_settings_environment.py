"""TWINBILL_ENV: production refuses development defaults by name (exit 2); development warns."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from twinbill_billing.settings import BillingSettings
from twinbill_common.settings import DEV_SERVICE_KEY, guest_broker_url, load_settings
from twinbill_gateway.settings import GatewaySettings
from twinbill_ingest.settings import BrokerAuthSettings, IngestSettings
from twinbill_twin.settings import TwinSettings

KEY = "k" * 40
PRODUCTION_COMMON = {"env": "production", "service_key": SecretStr(KEY),
                     "amqp_url": SecretStr("amqp://twinbill:s3cret@rabbit:5672/")}
PG = {"pg_dsn": SecretStr("postgresql://twinbill:pw@db:5432/twinbill")}


def test_development_is_the_default_and_lists_what_it_keeps() -> None:
    """Without TWINBILL_ENV a service starts, and says which defaults it runs on."""
    settings = load_settings(GatewaySettings)
    assert settings.env == "development"
    assert set(settings.development_defaults()) >= {
        "GATEWAY_JWT_SECRET", "GATEWAY_ADMIN_PASSWORD", "TWINBILL_SERVICE_KEY", "GATEWAY_PG_DSN"}
    # the gateway never opens the bus: its (unused) broker URL is not held to production
    assert "GATEWAY_AMQP_URL" not in settings.development_defaults()


@pytest.mark.parametrize(("cls", "overrides", "named"), [
    (GatewaySettings, {**PRODUCTION_COMMON, **PG}, {"GATEWAY_JWT_SECRET", "GATEWAY_ADMIN_PASSWORD"}),
    (TwinSettings, {**PRODUCTION_COMMON, **PG}, {"TWIN_DEVICE_SECRET_KEY"}),
    (IngestSettings, PRODUCTION_COMMON, {"INGEST_MQTT_PASSWORD"}),
    (BillingSettings, PRODUCTION_COMMON, {"BILLING_MONGO_URL"}),
    (GatewaySettings, {"env": "production"}, {"GATEWAY_JWT_SECRET", "TWINBILL_SERVICE_KEY",
                                              "GATEWAY_PG_DSN"}),
    (BrokerAuthSettings, {"env": "production"}, {"TWINBILL_SERVICE_KEY", "TWINBILL_MQTT_SERVICE_PASSWORD"}),
])
def test_production_refuses_development_defaults_naming_each(
        cls: type[GatewaySettings], overrides: dict[str, object], named: set[str],
        capsys: pytest.CaptureFixture[str]) -> None:
    """Exit 2, and every setting still at its development value is named on stderr."""
    with pytest.raises(SystemExit) as exit_:
        load_settings(cls, **overrides)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "TWINBILL_ENV=production" in err
    for name in named:
        assert f"  {name}: still the development default" in err


def test_production_starts_when_every_guarded_setting_is_set() -> None:
    """Nothing left at a development value: the settings load."""
    settings = load_settings(GatewaySettings, **PRODUCTION_COMMON, **PG,
                             jwt_secret=SecretStr("j" * 40), admin_password=SecretStr("a long admin pw"))
    assert settings.env == "production" and settings.development_defaults() == []


def test_production_reads_the_environment(monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """TWINBILL_ENV and TWINBILL_SERVICE_KEY are read whatever the service's prefix."""
    monkeypatch.setenv("TWINBILL_ENV", "production")
    monkeypatch.setenv("TWINBILL_SERVICE_KEY", DEV_SERVICE_KEY)
    with pytest.raises(SystemExit):
        load_settings(TwinSettings)
    assert "TWINBILL_SERVICE_KEY: still the development default" in capsys.readouterr().err
    monkeypatch.setenv("TWINBILL_ENV", "staging")
    with pytest.raises(SystemExit):
        load_settings(TwinSettings)
    assert "  TWINBILL_ENV: Input should be 'development' or 'production'" in capsys.readouterr().err


@pytest.mark.parametrize(("url", "guest"), [
    ("amqp://guest:guest@127.0.0.1:5672/", True), ("amqp://rabbit:5672/", True),
    ("amqp://guest:other@rabbit/", True), ("amqp://twinbill:pw@rabbit/", False)])
def test_guest_broker_account_is_detected(url: str, guest: bool) -> None:
    """RabbitMQ's guest account (or no user at all) counts as a development default."""
    assert guest_broker_url(url) is guest
