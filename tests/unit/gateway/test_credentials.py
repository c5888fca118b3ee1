"""Credentials: the three Authorization schemes, password hashes, token kinds and expiry, routing."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest

from twinbill_gateway.domain.credentials import (
    ApiKey,
    Basic,
    Bearer,
    CredentialError,
    hash_password,
    issue_token,
    parse_authorization,
    read_token,
    verify_password,
)
from twinbill_gateway.domain.routing import named_project, upstream_for

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
KEY = "0123456789abcdef0123456789abcdef01234567"  # the seed's shape (40 hex), made up
SECRET = "unit-test-signing-secret-of-32-bytes!"
OTHER = "another-signing-secret-of-32-bytes!!"


@pytest.mark.parametrize(("header", "expected"), [
    ("Bearer abc.def.ghi", Bearer("abc.def.ghi")),
    ("bearer abc", Bearer("abc")),
    ("Basic " + base64.b64encode(b"a@b.c:pa:ss").decode(), Basic("a@b.c", "pa:ss")),
    (f"token 1:{KEY}", ApiKey(1, KEY)),
])
def test_parse_authorization_accepts_the_three_schemes(header: str, expected: object) -> None:
    assert parse_authorization(header) == expected


@pytest.mark.parametrize(("header", "reason"), [
    ("Bearer", "without a token"),
    ("Basic !!!", "base64"),
    ("Basic " + base64.b64encode(b"no-colon").decode(), "email:password"),
    ("token 1:abc", "40 hex"),
    (f"token x:{KEY}", "40 hex"),
    ("Digest foo", "unsupported"),
])
def test_parse_authorization_names_what_is_wrong(header: str, reason: str) -> None:
    with pytest.raises(CredentialError, match=reason):
        parse_authorization(header)


def test_password_hash_round_trip_and_salt() -> None:
    first, second = hash_password("correct horse"), hash_password("correct horse")
    assert first != second  # salted
    assert verify_password("correct horse", first)
    assert not verify_password("wrong horse", first)
    assert not verify_password("x", "md5$00$00")


def test_tokens_carry_their_kind_and_expire() -> None:
    access = issue_token(7, kind="access", now=NOW, ttl=timedelta(minutes=15), secret=SECRET)
    assert read_token(access, kind="access", now=NOW + timedelta(minutes=14), secret=SECRET) == 7
    with pytest.raises(CredentialError, match="expired"):
        read_token(access, kind="access", now=NOW + timedelta(minutes=15), secret=SECRET)
    with pytest.raises(CredentialError, match="refresh token"):
        read_token(access, kind="refresh", now=NOW, secret=SECRET)
    with pytest.raises(CredentialError, match="invalid token"):
        read_token(access, kind="access", now=NOW, secret=OTHER)


@pytest.mark.parametrize(("path", "upstream"), [
    ("/api/v1/scheduler/history/", "billing"),
    ("/api/v1/scheduler/history/time/", "billing"),
    ("/api/v1/scheduler/tasks/", "scheduler"),
    ("/api/v1/scheduler/task/", "scheduler"),
    ("/api/v1/tariffs/3", "billing"),
    ("/dt/open/v1/instances", "twin"),
    ("/api/v1/devices/", "twin"),
    ("/internal/v1/products", None),
    ("/elsewhere", None),
])
def test_each_path_has_one_owner(path: str, upstream: str | None) -> None:
    assert upstream_for(path) == upstream


def test_named_project_reads_query_then_body() -> None:
    assert named_project({"project_id": "42"}, {"project_id": 1}) == 42
    assert named_project({}, {"project_id": 49}) == 49
    assert named_project({}, [{"id": 2}]) is None
    assert named_project({"project_id": "x"}, None) == "invalid"
