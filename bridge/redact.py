"""Keeping secrets out of text that is stored, logged or shown."""

from __future__ import annotations

import re
from collections.abc import Iterable

# Shapes of credentials that could reach an error message from a peer.
_PATTERNS = [
    re.compile(r"(?i)(bearer|token)\s+[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"gh[pousr]_[A-Za-z0-9]{20,}"),
    re.compile(
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S
    ),
]


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every known secret and credential-shaped string masked."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    for pattern in _PATTERNS:
        text = pattern.sub("***", text)
    return text
