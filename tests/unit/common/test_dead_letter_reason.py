"""Why a job was dead-lettered, from the headers our handler or RabbitMQ put on it."""

from __future__ import annotations

import pytest

from twinbill_common.deadletters import death_reason, holding_queue_of, main, work_queue_of


def test_our_reason_header_wins() -> None:
    headers = {"x-twinbill-reason": "gave up after 6 deliveries: boom", "x-first-death-reason": "rejected"}
    assert death_reason(headers) == "gave up after 6 deliveries: boom"


def test_broker_delivery_limit_is_named() -> None:
    headers = {"x-first-death-reason": b"delivery_limit", "x-first-death-queue": "ns.billing.jobs"}
    assert death_reason(headers) == "delivery limit exceeded (delivery_limit in ns.billing.jobs)"


def test_x_death_table_is_read_when_first_death_headers_are_missing() -> None:
    headers = {"x-death": [{"reason": "expired", "queue": "billing.jobs", "count": 1}]}
    assert death_reason(headers) == "expired (expired in billing.jobs)"


def test_unknown_or_missing_reason() -> None:
    assert death_reason({"x-first-death-reason": "something_new"}) == "something_new (something_new)"
    assert death_reason(None) == "dead-lettered (no reason recorded)"
    assert death_reason({"x-death": "garbage"}) == "dead-lettered (no reason recorded)"


@pytest.mark.parametrize(("given", "queue"), [
    ("twin.telemetry", "twin.telemetry"),
    ("billing.runs.dlq", "billing.runs"),
    ("scheduler.registry", "scheduler.registry"),
])
def test_a_queue_is_named_by_itself_or_its_dead_letter_queue(given: str, queue: str) -> None:
    assert work_queue_of(given) == queue


def test_an_unknown_queue_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match=r"unknown queue 'billing\.bills': one of twin\.telemetry, "):
        work_queue_of("billing.bills")


@pytest.mark.parametrize("argv", [["replay", "nope"], ["replay", "twin.telemetry", "--limit", "0"],
                                  ["replay", "billing.jobs.parked"], ["show", "billing.bills"],
                                  ["purge", "twin.telemetry"]])
def test_the_command_refuses_bad_arguments_before_connecting(
        argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--amqp-url", "amqp://guest:guest@127.0.0.1:1/", *argv])
    assert exited.value.code == 2
    assert "twinbill-dlq: error:" in capsys.readouterr().err


def test_parked_messages_are_shown_never_replayed() -> None:
    assert holding_queue_of("billing.jobs.parked") == "billing.jobs.parked"
    assert holding_queue_of("twin.telemetry") == "twin.telemetry.dlq"
    with pytest.raises(ValueError, match="a replay would park them again"):
        work_queue_of("billing.jobs.parked")
