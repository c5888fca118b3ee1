"""`make run` starts one ingest gateway per core by default, each on its own HTTP port, all in
the same share group (they share the MQTT load; services/ingest/README.md)."""

from __future__ import annotations

import os

import pytest

from twinbill_common.settings import load_settings
from twinbill_devstack.run import services
from twinbill_devstack.settings import DevstackSettings


def test_one_ingest_process_per_core_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without TWINBILL_INGEST_PROCESSES, as many ingest processes as the machine has cores."""
    monkeypatch.delenv("TWINBILL_INGEST_PROCESSES", raising=False)
    ingest = [s for s in services("mongodb://x", DevstackSettings()) if s.module == "twinbill_ingest"]
    assert len(ingest) == (os.cpu_count() or 1)


def test_the_setting_names_the_count_and_each_process_has_its_port(monkeypatch: pytest.MonkeyPatch) -> None:
    """Three processes: 8004, 8104, 8204, distinct names, no share group or client id of their own
    (the default group, generated ids), the same broker and bus."""
    monkeypatch.setenv("TWINBILL_INGEST_PROCESSES", "3")
    ingest = [s for s in services("mongodb://x", DevstackSettings()) if s.module == "twinbill_ingest"]
    assert [(s.name, s.port, s.env["INGEST_HTTP_PORT"]) for s in ingest] == [
        ("ingest", 8004, "8004"), ("ingest-2", 8104, "8104"), ("ingest-3", 8204, "8204")]
    assert all("INGEST_SHARE_GROUP" not in s.env and "INGEST_MQTT_CLIENT_ID" not in s.env for s in ingest)
    assert len({(s.env["INGEST_MQTT_PORT"], s.env["INGEST_AMQP_URL"]) for s in ingest}) == 1


def test_a_count_below_one_is_refused(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """0 processes is a settings error naming the variable, not a platform without ingest."""
    monkeypatch.setenv("TWINBILL_INGEST_PROCESSES", "0")
    with pytest.raises(SystemExit) as stopped:
        load_settings(DevstackSettings)
    assert stopped.value.code == 2
    assert "TWINBILL_INGEST_PROCESSES" in capsys.readouterr().err
