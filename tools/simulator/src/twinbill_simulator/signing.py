"""EnOS sub-device login signature: sorted params (name+value) + device secret, sha256, upper hex."""

from __future__ import annotations

import hashlib


def sign_sha256(params: dict[str, str], *, secret: str) -> str:
    """The sha256 signature EnOS documents for combine.login / combine.login.batch."""
    content = "".join(f"{key}{params[key]}" for key in sorted(params))
    return hashlib.sha256(f"{content}{secret}".encode()).hexdigest().upper()
