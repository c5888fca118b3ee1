"""EnOS topics: which request a topic carries, the method it must name, and its reply topic."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Kind(Enum):
    """The request kinds the gateway serves."""

    POST = "post"
    POST_BATCH = "post/batch"
    RESUME = "resume"
    RESUME_BATCH = "resume/batch"
    LOGIN = "login"
    LOGIN_BATCH = "login/batch"
    LOGOUT = "logout"

    @property
    def is_batch(self) -> bool:
        """Batch requests carry a list of per-device entries in `params`."""
        return self in (Kind.POST_BATCH, Kind.RESUME_BATCH)

    @property
    def is_session(self) -> bool:
        """Sub-device session requests (/ext/session/...)."""
        return self in (Kind.LOGIN, Kind.LOGIN_BATCH, Kind.LOGOUT)


METHODS: dict[Kind, str] = {
    Kind.POST: "thing.measurepoint.post",
    Kind.POST_BATCH: "thing.measurepoint.post.batch",
    Kind.RESUME: "thing.measurepoint.resume",
    Kind.RESUME_BATCH: "thing.measurepoint.resume.batch",
    Kind.LOGIN: "combine.login",
    Kind.LOGIN_BATCH: "combine.login.batch",
    Kind.LOGOUT: "combine.logout",
}

MEASUREPOINT_SUFFIXES = ("post", "post/batch", "resume", "resume/batch")
SESSION_SUFFIXES = ("login", "login/batch", "logout")


@dataclass(frozen=True)
class Topic:
    """A parsed request topic: the publishing device and the request kind."""

    product_key: str
    device_key: str
    kind: Kind

    @property
    def reply(self) -> str:
        """The reply topic: the request topic with `_reply` appended."""
        return f"{self.request}_reply"

    @property
    def request(self) -> str:
        """The request topic text."""
        if self.kind.is_session:
            return f"/ext/session/{self.product_key}/{self.device_key}/combine/{self.kind.value}"
        return f"/sys/{self.product_key}/{self.device_key}/thing/measurepoint/{self.kind.value}"


def parse_topic(topic: str) -> Topic | None:
    """Parse a request topic, or None when it is not one the gateway serves."""
    parts = topic.split("/")
    # ['', 'sys', pk, dk, 'thing', 'measurepoint', kind...]
    if len(parts) >= 7 and parts[0] == "" and parts[1] == "sys" and parts[4:6] == ["thing", "measurepoint"]:
        suffix = "/".join(parts[6:])
        if suffix in MEASUREPOINT_SUFFIXES and parts[2] and parts[3]:
            return Topic(parts[2], parts[3], Kind(suffix))
        return None
    # ['', 'ext', 'session', pk, dk, 'combine', kind...]
    if len(parts) >= 7 and parts[0] == "" and parts[1:3] == ["ext", "session"] and parts[5] == "combine":
        suffix = "/".join(parts[6:])
        if suffix in SESSION_SUFFIXES and parts[3] and parts[4]:
            return Topic(parts[3], parts[4], Kind(suffix))
    return None


def subscriptions(share_group: str | None) -> list[str]:
    """The topic filters the gateway subscribes to (shared when a group is given).

    Each request kind is subscribed explicitly: `measurepoint/#` would also match the `_reply`
    topics the gateway itself publishes. A shared filter keeps the topic's leading slash, hence
    the double slash in `$share/<group>//sys/...`.
    """
    filters = [f"/sys/+/+/thing/measurepoint/{suffix}" for suffix in MEASUREPOINT_SUFFIXES]
    filters += [f"/ext/session/+/+/combine/{suffix}" for suffix in SESSION_SUFFIXES]
    if share_group:
        return [f"$share/{share_group}/{flt}" for flt in filters]
    return filters
