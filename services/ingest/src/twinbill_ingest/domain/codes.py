"""EnOS reply codes the gateway answers with, and their documented messages.

Seed 003 documents 200, 1204, 1206 and 1212; the EnOS common codes 1008, 1220, 1251 and 1260 and
the login codes (723 for a partly failed batch login) come from EnOS's device-protocol pages. The
login failure codes for a bad signature (1214) and an unknown sub-device (1212) are this project's
choice where EnOS publishes no number (see services/ingest/README.md).
"""

from __future__ import annotations

from enum import IntEnum


class Code(IntEnum):
    """Reply codes on `*_reply` topics."""

    OK = 200
    PARTIAL_LOGIN = 723
    TOO_LARGE = 1008
    MODEL_INVALID = 1204
    DATA_FORMAT = 1206
    NO_SUB_DEVICE_PERMISSION = 1212
    SIGN_INVALID = 1214
    PAYLOAD_FORMAT = 1220
    PAYLOAD_EMPTY = 1251
    METHOD_MISMATCH = 1260
    SERVER_ERROR = 500


MESSAGES: dict[Code, str] = {
    Code.OK: "",
    Code.PARTIAL_LOGIN: "some sub-devices failed to log in",
    Code.TOO_LARGE: "message too large",
    Code.MODEL_INVALID: "Model validate failed",
    Code.DATA_FORMAT: "Measurepoint post data format error",
    Code.NO_SUB_DEVICE_PERMISSION: "No sub-device permission",
    Code.SIGN_INVALID: "sub-device sign check failed",
    Code.PAYLOAD_FORMAT: "payload format error",
    Code.PAYLOAD_EMPTY: "payload is empty",
    Code.METHOD_MISMATCH: "method does not match the topic",
    Code.SERVER_ERROR: "internal error, retry later",
}


class Rejection(Exception):
    """A request (or one point) is refused with a code and a message naming what is wrong."""

    def __init__(self, code: Code, detail: str) -> None:
        super().__init__(f"{MESSAGES[code]}: {detail}")
        self.code = code
        self.detail = detail
        self.request_id: str | None = None  # set once the payload's id is known, for the reply
        self.points = 0  # how many measurepoint values the refused request carried

    @property
    def message(self) -> str:
        """The documented message followed by what exactly is wrong."""
        return f"{MESSAGES[self.code]}: {self.detail}"
