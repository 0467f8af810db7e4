"""App JWT claims, and the installation-token cache."""

from __future__ import annotations

import jwt

from bridge.github import app_jwt, jwt_claims


def test_claims_follow_githubs_rules() -> None:
    claims = jwt_claims(123, now=1_700_000_000.7)
    assert claims == {"iat": 1_699_999_940, "exp": 1_700_000_540, "iss": "123"}
    assert claims["exp"] - claims["iat"] <= 600  # GitHub's maximum is 10 minutes


def test_jwt_is_rs256_and_verifies_with_the_public_key(
    app_keys: tuple[str, str],
) -> None:
    token = app_jwt(42, app_keys[0], now=1_700_000_000)
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "RS256"
    claims = jwt.decode(
        token,
        app_keys[1],
        algorithms=["RS256"],
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims["iss"] == "42"
