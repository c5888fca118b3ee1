"""Ingest gateway settings, env prefix INGEST_."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from twinbill_common.settings import DEV_SERVICE_KEY, CommonSettings, EnvironmentSettings


class IngestSettings(CommonSettings):
    """Settings of the ingest gateway."""

    model_config = SettingsConfigDict(env_prefix="INGEST_", extra="ignore", frozen=True)
    DEVELOPMENT_DEFAULTS: ClassVar[tuple[str, ...]] = (*CommonSettings.DEVELOPMENT_DEFAULTS, "mqtt_password")

    http_port: int = 8004
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = Field(default=1883, ge=1, le=65535)
    mqtt_username: str | None = "twinbill-ingest"
    mqtt_password: SecretStr | None = None
    mqtt_client_id: str = ""  # empty: a unique id per replica
    # With a stable MQTT_CLIENT_ID per replica, Mosquitto keeps the replica's session (its shared
    # subscriptions) this long after a disconnect and queues QoS 1 requests for it meanwhile; 0
    # (and always with a generated id) starts clean. Mosquitto keeps giving an absent member its
    # share of the requests, so this also bounds how long a replica removed for good collects
    # requests nobody answers (devices retry them). See the README, "Mosquitto restarts".
    mqtt_session_expiry: int = Field(default=120, ge=0)
    # The longest pause between attempts to reach Mosquitto: a refused connect costs nothing, and
    # every second the gateway is not subscribed after the broker is back is a second in which
    # requests go nowhere (devices retry them).
    mqtt_reconnect_max: float = Field(default=1.0, gt=0)
    # Replicas share the request topics through `$share/<group>/...`; empty subscribes unshared.
    share_group: str = "ingest"
    twin_url: str = "http://127.0.0.1:8001"
    # A JSON file {"products": [...], "devices": [...]} used instead of the twin (bench, demo).
    registry_file: Path | None = None
    max_payload_bytes: int = Field(default=256 * 1024, ge=1024)
    max_inflight: int = Field(default=2000, ge=1)
    # How long a publish may wait for RabbitMQ's confirm before the device hears "retry later".
    publish_timeout: float = Field(default=10.0, gt=0)
    status_interval: float = Field(default=2.0, gt=0)
    # How often the twin's time-series store state is polled: while the twin reports that
    # PostgreSQL refuses its writes (disk full), measurepoint requests get 500 instead of 200.
    store_check_interval: float = Field(default=1.0, gt=0)
    registry_reload_delay: float = Field(default=0.5, ge=0)
    # Reverse control: a command for an offline device is held this long (unacked) before it is
    # published again to the queue's tail; keep it well under RabbitMQ's consumer_timeout (30 min).
    command_hold: float = Field(default=300.0, gt=0)
    command_prefetch: int = Field(default=1000, ge=1)  # commands held at once per replica
    # A directly connected device counts as online this long after it was last heard from.
    command_online_window: float = Field(default=600.0, gt=0)
    command_recheck: float = Field(default=2.0, gt=0)  # held commands re-check at least this often


class BrokerAuthSettings(EnvironmentSettings):
    """Settings of `twinbill-broker-auth`, the Mosquitto sidecar: the registry it reads (the
    gateway's own INGEST_TWIN_URL), the platform's service key (the twin's /internal/ paths
    want a service token) and the ingest service user's broker password."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True, populate_by_name=True)
    DEVELOPMENT_DEFAULTS: ClassVar[tuple[str, ...]] = ("service_key", "mqtt_service_password")

    twin_url: str = Field(default="http://127.0.0.1:8001", validation_alias="INGEST_TWIN_URL")
    mqtt_service_password: SecretStr = Field(default=SecretStr(""),
                                             validation_alias="TWINBILL_MQTT_SERVICE_PASSWORD")
    service_key: SecretStr = Field(default=SecretStr(DEV_SERVICE_KEY), min_length=32,
                                   validation_alias="TWINBILL_SERVICE_KEY")
