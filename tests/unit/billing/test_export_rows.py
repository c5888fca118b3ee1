"""CSV rows of the history export: defaults for documents written before credit notes, formula
defusing, names only for residents, local times."""

from __future__ import annotations

from datetime import UTC, datetime

from bson import ObjectId

from twinbill_billing.export import COLUMNS, csv_row, safe_text


def test_a_plain_bill_is_an_issued_bill_without_links() -> None:
    """A document without kind/status/links (every bill before issue 11) is an issued bill."""
    oid = ObjectId()
    row = dict(zip(COLUMNS, csv_row({
        "_id": oid, "project_id": 1, "device_key": "K1", "device_name": "表", "device_type": 1,
        "water_meter_kind": "purified", "house_address": ["园", "", "", "", "101"],
        "residents": [{"name": "张三", "cellphone": "13800000001"}, {"name": "", "cellphone": "2"}],
        "opening_reading": "1", "closing_reading": "2.5", "consumption": "1.5", "charge": "3.00",
        "timezone": "Asia/Shanghai", "from_time": datetime(2025, 12, 31, 16, tzinfo=UTC),
        "to_time": datetime(2026, 1, 31, 16, tzinfo=UTC), "created_at": datetime(2026, 1, 31, 16, 1, tzinfo=UTC),
    }), strict=True))
    assert (row["bill_id"], row["kind"], row["status"], row["credits_bill_id"], row["credit_note_id"]) == (
        str(oid), "bill", "issued", "", "")
    assert (row["house_address"], row["residents"], row["device_type"], row["estimated"]) == (
        "园 / 101", "张三", "water", "false")
    assert (row["from_time"], row["to_time"], row["created_at"]) == (
        "2026-01-01 00:00:00", "2026-02-01 00:00:00", "2026-02-01 00:01:00")


def test_formula_like_text_is_defused() -> None:
    assert [safe_text(v) for v in ("=1+2", "+86", "-x", "@SUM", "\tx", "ok", None)] == [
        "'=1+2", "'+86", "'-x", "'@SUM", "'\tx", "ok", ""]
