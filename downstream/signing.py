"""Signed callbacks: HMAC-SHA256 over the timestamp and the body, with a shared secret.

The sender puts ``X-Orderflow-Timestamp`` (Unix seconds) and ``X-Orderflow-Signature``
(``sha256=<hex>`` of ``HMAC(secret, timestamp + "." + body)``) on the request; the receiver
recomputes it, compares in constant time and refuses stale timestamps, so a captured
callback cannot be replayed later (and one replayed soon is caught by its signature).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

SIGNATURE_HEADER = "X-Orderflow-Signature"
TIMESTAMP_HEADER = "X-Orderflow-Timestamp"
CORRELATION_HEADER = "X-Orderflow-Correlation"
#: How far a callback's timestamp may be from the receiver's clock, in seconds.
TOLERANCE = 300.0


def sign(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """Whether ``signature`` signs ``timestamp`` and ``body``; False for any text at all
    (compared as bytes: a non-ASCII header is a bad signature, not an error)."""
    given = signature.encode("utf-8", "replace")
    return hmac.compare_digest(sign(secret, timestamp, body).encode(), given)


def new_correlation_token() -> str:
    """An unguessable token that names one task to the system's callback."""
    return secrets.token_urlsafe(24)
