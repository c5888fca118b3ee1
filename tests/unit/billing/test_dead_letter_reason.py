"""Why a job was dead-lettered, from the headers our handler or RabbitMQ put on it."""

from __future__ import annotations

from twinbill_billing.deadletters import death_reason


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
