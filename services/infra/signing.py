"""HMAC signing of trainer callbacks: a per-job secret, a timestamp and the exact body bytes.

`trainer_runner/callbacks.py` signs with the same recipe (it may not import this module);
a test checks both sides agree.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

TIMESTAMP_HEADER = "X-VTP-Timestamp"
SIGNATURE_HEADER = "X-VTP-Signature"
MAX_SKEW_S = 300


def new_secret() -> str:
    return secrets.token_hex(32)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def verify(secret: str, timestamp_header: str | None, signature: str | None, body: bytes) -> bool:
    """True only for a fresh timestamp and a matching signature (constant-time compare)."""
    if not timestamp_header or not signature:
        return False
    try:
        timestamp = int(timestamp_header)
    except ValueError:
        return False
    if abs(time.time() - timestamp) > MAX_SKEW_S:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)
