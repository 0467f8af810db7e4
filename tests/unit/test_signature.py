"""Webhook signatures: GitHub's documented vector, and every way a header can be wrong."""

from __future__ import annotations

import pytest

from bridge.signature import SignatureError, sign, verify

# From docs.github.com, "Validating webhook deliveries".
DOC_SECRET = "It's a Secret to Everybody"
DOC_BODY = b"Hello, World!"
DOC_HEADER = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def test_githubs_documented_vector() -> None:
    assert sign(DOC_SECRET, DOC_BODY) == DOC_HEADER
    verify(DOC_BODY, [DOC_SECRET], DOC_HEADER)


def test_any_of_several_secrets_verifies_during_rotation() -> None:
    verify(DOC_BODY, ["new-secret", DOC_SECRET], DOC_HEADER)


def test_uppercase_hex_is_accepted() -> None:
    verify(DOC_BODY, [DOC_SECRET], "sha256=" + DOC_HEADER[7:].upper())


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "missing"),
        ("", "malformed"),
        ("bogus=abc", "malformed"),
        ("sha256=", "malformed"),
        ("sha256=zz" + "0" * 62, "malformed"),
        ("sha256=" + "0" * 63, "malformed"),
        ("sha256=" + "é" * 64, "malformed"),
        (DOC_HEADER + "," + DOC_HEADER, "malformed"),
        ("sha256=" + "0" * 64, "does not match"),
        ("sha1=" + "0" * 40, "malformed"),
    ],
    ids=[
        "missing",
        "empty",
        "bogus-prefix",
        "no-digest",
        "non-hex",
        "short",
        "non-ascii",
        "duplicated",
        "wrong",
        "sha1-in-sha256-header",
    ],
)
def test_bad_headers_are_refused(header: str | None, reason: str) -> None:
    with pytest.raises(SignatureError, match=reason):
        verify(DOC_BODY, [DOC_SECRET], header)


def test_changed_body_is_refused() -> None:
    with pytest.raises(SignatureError, match="does not match"):
        verify(b"Hello, World?", [DOC_SECRET], DOC_HEADER)


def test_legacy_sha1_alone_is_refused_unless_allowed() -> None:
    import hashlib
    import hmac

    legacy = "sha1=" + hmac.new(DOC_SECRET.encode(), DOC_BODY, hashlib.sha1).hexdigest()
    with pytest.raises(SignatureError, match="SHA-1"):
        verify(DOC_BODY, [DOC_SECRET], None, legacy)
    verify(DOC_BODY, [DOC_SECRET], None, legacy, allow_sha1=True)


def test_no_configured_secret_refuses_everything() -> None:
    with pytest.raises(SignatureError, match="no webhook secret"):
        verify(DOC_BODY, [], DOC_HEADER)
