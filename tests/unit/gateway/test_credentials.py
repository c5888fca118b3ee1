"""Credentials: the three Authorization schemes, password hashes, token kinds and expiry, routing,
and the project-access rules for non-administrators."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest

from twinbill_gateway.domain.access import (
    AdminOnly,
    Collection,
    InvalidProject,
    Item,
    OpenDt,
    ProjectConflict,
    TaskKey,
    access_for,
    item_owner,
    named_projects,
    parse_body,
)
from twinbill_gateway.domain.credentials import (
    ApiKey,
    Basic,
    Bearer,
    CredentialError,
    hash_password,
    issue_token,
    parse_authorization,
    read_claims,
    verify_password,
)
from twinbill_gateway.domain.routing import upstream_for

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
    assert read_claims(access, kind="access", now=NOW + timedelta(minutes=14), secret=SECRET).user_id == 7
    with pytest.raises(CredentialError, match="expired"):
        read_claims(access, kind="access", now=NOW + timedelta(minutes=15), secret=SECRET)
    with pytest.raises(CredentialError, match="refresh token"):
        read_claims(access, kind="refresh", now=NOW, secret=SECRET)
    with pytest.raises(CredentialError, match="invalid token"):
        read_claims(access, kind="access", now=NOW, secret=OTHER)


@pytest.mark.parametrize(("path", "upstream"), [
    ("/api/v1/scheduler/history/", "billing"),
    ("/api/v1/scheduler/history/time/", "billing"),
    ("/api/v1/scheduler/tasks/", "scheduler"),
    ("/api/v1/scheduler/task/", "scheduler"),
    ("/api/v1/tariffs/3", "billing"),
    ("/api/v1/bills/ab12/void", "billing"),
    ("/dt/open/v1/instances", "twin"),
    ("/api/v1/devices/", "twin"),
    ("/internal/v1/products", None),
    ("/elsewhere", None),
])
def test_each_path_has_one_owner(path: str, upstream: str | None) -> None:
    assert upstream_for(path) == upstream


@pytest.mark.parametrize(("query", "body", "expected"), [
    (["42"], {"project_id": 42}, 42),
    (["42"], {"name": "x"}, 42),
    ([], {"project_id": 49}, 49),
    ([], {"project_id": "49"}, 49),
    ([], [{"project_id": 3}, {"project_id": 3}], 3),
    ([], [{"id": 2}], None),
    ([""], None, None),
    ([], {"project_id": None}, None),
])
def test_named_projects_agree_or_name_none(query: list[str], body: object, expected: int | None) -> None:
    assert named_projects(query, body) == expected


@pytest.mark.parametrize(("query", "body"), [
    (["42"], {"project_id": 7}),  # the query no longer wins over the body
    (["42", "7"], None),
    ([], [{"project_id": 42}, {"project_id": 7}]),
])
def test_named_projects_refuse_a_conflict(query: list[str], body: object) -> None:
    with pytest.raises(ProjectConflict, match="different projects"):
        named_projects(query, body)


@pytest.mark.parametrize("value", ["x", "4_2", "42.0", True, 4.2, {"id": 1}])
def test_named_projects_refuse_a_non_integer(value: object) -> None:
    with pytest.raises(InvalidProject, match="not an integer"):
        named_projects([], {"project_id": value})


def test_body_is_read_as_json_whatever_it_claims() -> None:
    assert parse_body(b'{"project_id": 7}') == {"project_id": 7}
    assert parse_body(b"name,project\nx,7\n") is None
    assert parse_body(b"\xff\xfe") is None
    assert parse_body(b"") is None
    assert parse_body(b'{"project_id": 1, "project_id": 1}') == {"project_id": 1}
    with pytest.raises(ProjectConflict, match="more than once"):
        parse_body(b'{"project_id": 42, "project_id": 7}')


@pytest.mark.parametrize(("path", "access"), [
    ("/api/v1/scheduler/task/", Collection()),
    ("/api/v1/scheduler/tasks/", Collection()),
    ("/api/v1/scheduler/crontab/preview/", Collection()),
    ("/api/v1/scheduler/history/time/", Collection()),
    ("/api/v1/scheduler/history", Collection()),
    ("/api/v1/scheduler/tasks/k1/", TaskKey("k1")),
    ("/api/v1/scheduler/tasks/k1", TaskKey("k1")),
    ("/api/v1/scheduler/tasks/k.1/status/", TaskKey("k.1")),
    ("/api/v1/devices/", Collection()),
    ("/api/v1/devices", Collection()),
    ("/api/v1/io/sites_csv", Collection()),
    ("/api/v1/tariffs/preview", Collection()),
    ("/api/v1/devices/3", Item("twin", "devices", "/api/v1/devices/3")),
    ("/api/v1/sites/3/anything", Item("twin", "sites", "/api/v1/sites/3")),
    ("/api/v1/tariffs/ab12/", Item("billing", "tariffs", "/api/v1/tariffs/ab12")),
    ("/api/v1/bills/ab12/void", Item("billing", "bills", "/api/v1/bills/ab12")),
])
def test_access_kind_of_each_path(path: str, access: object) -> None:
    assert access_for(path) == access


@pytest.mark.parametrize("path", [
    "/dt/open", "/dt/open/v1/../../api/v1/devices/2", "/api/v1/scheduler/other/", "/api/v1/elsewhere/1",
    "/api/v1//devices/3", "/api/v1/", "/metrics",
    "/api/v1/devices/1/../2", "/api/v1/devices/1/%2e%2E/2", "/api/v1/scheduler/tasks/k%2F..%2F/",
    "/api/v1/devices/./1", "/api/v1/devices/1\\..\\2",
])
def test_unlisted_paths_are_for_administrators(path: str) -> None:
    assert isinstance(access_for(path), AdminOnly)


@pytest.mark.parametrize("path", ["/dt/open/v1/instances", "/dt/open/v1/instance", "/dt/open/v1/instance/a/"])
def test_seed_002_paths_are_filtered_by_the_twin(path: str) -> None:
    assert access_for(path) == OpenDt()


def test_item_owner_is_its_project_or_none() -> None:
    assert item_owner("devices", {"id": 3, "project_id": 42}) == 42
    assert item_owner("projects", {"id": 42, "name": "p"}) == 42
    assert item_owner("products", {"id": 5, "name": "meter"}) is None
    assert item_owner("devices", {"id": 3, "project_id": True}) is None
    assert item_owner("devices", None) is None
