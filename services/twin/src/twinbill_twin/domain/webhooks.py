"""Webhook signatures and retry schedule (pure).

A delivery is a POST of a JSON body with these headers:
- `X-Twinbill-Timestamp`: Unix seconds when this attempt was signed;
- `X-Twinbill-Signature`: `sha256=` + hex HMAC-SHA256, keyed with the webhook's secret, of
  `{timestamp}.` followed by the body's bytes (the timestamp is inside the MAC so an old delivery
  cannot be replayed with a new time; a receiver refuses one older than it tolerates);
- `X-Twinbill-Idempotency-Key`: the same on every attempt of one delivery (at least once: a
  receiver that has seen the key has seen the notification);
- `X-Twinbill-Webhook-Id`, `X-Twinbill-Event-Id`.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta

MAX_BACKOFF = timedelta(hours=1)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The X-Twinbill-Signature value of a body sent at `timestamp`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify(secret: str, timestamp: int, body: bytes, signature: str, *, now: int, tolerance: int = 300) -> bool:
    """What a receiver checks: the signature matches and the timestamp is recent."""
    return abs(now - timestamp) <= tolerance and hmac.compare_digest(sign(secret, timestamp, body), signature)


def retry_after(attempts: int, *, first: float = 2.0) -> timedelta:
    """The wait before attempt `attempts + 1`: `first` seconds doubling, at most an hour."""
    return min(timedelta(seconds=first * 2 ** min(attempts - 1, 20)), MAX_BACKOFF)
