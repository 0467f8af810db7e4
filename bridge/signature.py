"""Webhook signature checks, pure: bytes and header values in, a verdict out.

GitHub signs the raw request body with HMAC-SHA256 and sends
`X-Hub-Signature-256: sha256=<64 hex digits>`
(docs.github.com, "Validating webhook deliveries"). The legacy
`X-Hub-Signature: sha1=...` is accepted only when the operator allows it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable

_SHA256 = re.compile(r"sha256=([0-9a-fA-F]{64})")
_SHA1 = re.compile(r"sha1=([0-9a-fA-F]{40})")


class SignatureError(Exception):
    """The delivery is not signed with a secret we know; `reason` says how."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def sign(secret: str, body: bytes) -> str:
    """The `X-Hub-Signature-256` value GitHub would send for `body`."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(
    body: bytes,
    secrets: Iterable[str],
    sha256_header: str | None,
    sha1_header: str | None = None,
    allow_sha1: bool = False,
) -> None:
    """Return if `body` is signed by one of `secrets`; raise SignatureError if not.

    Every secret is compared, in constant time, so that the time taken does not
    tell which one (or whether any) matched.
    """
    # An empty key would let anyone sign; it counts as no key at all.
    keys = [secret.encode() for secret in secrets if secret]
    if not keys:
        raise SignatureError("no webhook secret is configured")
    if sha256_header is not None:
        expected = _parse(_SHA256, sha256_header, "X-Hub-Signature-256")
        algorithm = hashlib.sha256
    elif sha1_header is not None and allow_sha1:
        expected = _parse(_SHA1, sha1_header, "X-Hub-Signature")
        algorithm = hashlib.sha1
    elif sha1_header is not None:
        raise SignatureError(
            "only the legacy X-Hub-Signature (SHA-1) header was sent; "
            "SHA-1 signatures are refused"
        )
    else:
        raise SignatureError("the X-Hub-Signature-256 header is missing")

    matched = False
    for key in keys:
        actual = hmac.new(key, body, algorithm).digest()
        matched |= hmac.compare_digest(actual, expected)
    if not matched:
        raise SignatureError("the signature does not match the body")


def _parse(pattern: re.Pattern[str], header: str, name: str) -> bytes:
    match = pattern.fullmatch(header.strip())
    if match is None:
        raise SignatureError(f"the {name} header is malformed")
    return bytes.fromhex(match.group(1))
