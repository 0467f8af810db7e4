"""Settings: defaults, parsing, masking, and one clear line per problem."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from bridge.settings import (
    DEFAULT_LABELS,
    Secret,
    SettingsError,
    ensure_webhook_secret,
    load_settings,
)


def load(**env: str):  # type: ignore[no-untyped-def]
    return load_settings(env, env_file=None)


def test_defaults_with_an_empty_environment() -> None:
    settings = load()
    assert settings.twill_api_url == "https://twill.ai/api/v1"
    assert settings.github_api_url == "https://api.github.com"
    assert settings.database_url == "sqlite+aiosqlite:///twill-bridge.db"
    assert dict(settings.labels) == DEFAULT_LABELS
    assert settings.dry_run
    assert "TWILL_API_KEY is not set" in settings.dry_run_reasons


def test_secrets_and_ids_are_stripped_and_masked(app_keys: tuple[str, str]) -> None:
    settings = load(
        TWILL_API_KEY="  tw-key-123\n",
        GITHUB_APP_ID=" 42\n",
        GITHUB_APP_PRIVATE_KEY=app_keys[0] + "\n\n",
        GITHUB_WEBHOOK_SECRET=" sec-alpha , sec-beta\n",
    )
    assert settings.twill_api_key == Secret("tw-key-123")
    assert settings.github_app_id == 42
    assert [s.reveal() for s in settings.webhook_secrets] == ["sec-alpha", "sec-beta"]
    assert not settings.dry_run
    shown = repr(settings)
    assert (
        "tw-key-123" not in shown
        and "PRIVATE KEY" not in shown
        and "sec-alpha" not in shown
    )


def test_private_key_from_a_file_and_with_escaped_newlines(
    tmp_path: Path, app_keys: tuple[str, str]
) -> None:
    path = tmp_path / "app.pem"
    path.write_text(app_keys[0])
    assert load(GITHUB_APP_PRIVATE_KEY_PATH=str(path)).github_private_key == Secret(
        app_keys[0].strip()
    )
    one_line = app_keys[0].strip().replace("\n", "\\n")
    assert load(GITHUB_APP_PRIVATE_KEY=one_line).github_private_key == Secret(
        app_keys[0].strip()
    )


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"GITHUB_APP_ID": "abc"}, "GITHUB_APP_ID must be numeric"),
        ({"GITHUB_APP_PRIVATE_KEY": "not a pem"}, "does not hold a readable PEM"),
        ({"GITHUB_APP_PRIVATE_KEY_PATH": "/nonexistent/key.pem"}, "cannot be read"),
        ({"TWILL_API_URL": "twill.ai/api"}, "TWILL_API_URL must be an http(s) URL"),
        ({"GITHUB_API_URL": "ftp://x"}, "GITHUB_API_URL must be an http(s) URL"),
        ({"BRIDGE_PORT": "eighty"}, "BRIDGE_PORT must be a whole number"),
        ({"BRIDGE_LABELS": "twill=BUILD"}, "BRIDGE_LABELS entry 'twill=BUILD'"),
        ({"DATABASE_URL": "mysql://x/y"}, "DATABASE_URL must be"),
        ({"BRIDGE_DRY_RUN": "maybe"}, "BRIDGE_DRY_RUN must be true or false"),
    ],
    ids=[
        "app-id",
        "pem",
        "pem-path",
        "twill-url",
        "github-url",
        "port",
        "labels",
        "database",
        "flag",
    ],
)
def test_each_problem_gets_one_clear_sentence(
    env: dict[str, str], problem: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        load(**env)
    assert len(caught.value.problems) == 1
    assert problem in caught.value.problems[0]


def test_all_problems_are_reported_at_once() -> None:
    with pytest.raises(SettingsError) as caught:
        load(GITHUB_APP_ID="x", BRIDGE_PORT="y", TWILL_API_URL="z")
    assert len(caught.value.problems) == 3


def test_labels_override_format() -> None:
    settings = load(BRIDGE_LABELS=" Agent = swe , agent-plan=PLAN,")
    assert dict(settings.labels) == {"agent": "SWE", "agent-plan": "PLAN"}


def test_database_urls_get_async_drivers() -> None:
    assert (
        load(DATABASE_URL="postgres://u@h/db").database_url
        == "postgresql+asyncpg://u@h/db"
    )
    assert (
        load(DATABASE_URL="sqlite:///x.db").database_url == "sqlite+aiosqlite:///x.db"
    )


def test_env_file_is_read_and_environment_wins(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("TWILL_API_KEY=from-file\nBRIDGE_PORT=9000\n")
    settings = load_settings({"BRIDGE_PORT": "9100"}, env_file=env_file)
    assert settings.twill_api_key == Secret("from-file")
    assert settings.port == 9100


def test_missing_webhook_secret_is_generated_once_and_kept_private(
    tmp_path: Path,
) -> None:
    settings = load(BRIDGE_DATA_DIR=str(tmp_path))
    first, path = ensure_webhook_secret(settings)
    again, _ = ensure_webhook_secret(settings)
    assert path == tmp_path / "webhook-secret"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert first.webhook_secrets == again.webhook_secrets
    assert len(first.webhook_secrets[0].reveal()) == 64


def test_an_emptied_secret_file_is_replaced_never_trusted(tmp_path: Path) -> None:
    (tmp_path / "webhook-secret").write_text("\n")
    settings, _ = ensure_webhook_secret(load(BRIDGE_DATA_DIR=str(tmp_path)))
    assert len(settings.webhook_secrets[0].reveal()) == 64


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"GITHUB_APP_ID": "²"}, "GITHUB_APP_ID must be numeric"),
        ({"GITHUB_APP_ID": "0"}, "GITHUB_APP_ID must be numeric"),
        ({"TWILL_API_URL": "http://[::1"}, "TWILL_API_URL must be an http(s) URL"),
        (
            {"TWILL_API_URL": "http://twill.test:99999/api"},
            "TWILL_API_URL must be an http(s) URL",
        ),
        ({"BRIDGE_PORT": "99999"}, "at most 65535"),
        ({"BRIDGE_SHUTDOWN_GRACE_SECONDS": "inf"}, "must be a number"),
        ({"BRIDGE_LEASE_SECONDS": "nan"}, "must be a number"),
        (
            {"DATABASE_URL": "postgresql://u@h:notaport/db"},
            "DATABASE_URL is not a valid URL",
        ),
        (
            {"BRIDGE_DEFAULT_AGENT": "sonnet"},
            "BRIDGE_DEFAULT_AGENT must look like provider/model",
        ),
        (
            {"BRIDGE_DEFAULT_AGENT": "a/" + "b" * 250},
            "BRIDGE_DEFAULT_AGENT must look like provider/model",
        ),
    ],
    ids=[
        "superscript-digit",
        "zero",
        "bad-ipv6",
        "port-out-of-range",
        "port-too-big",
        "inf",
        "nan",
        "db-port",
        "agent-shape",
        "agent-length",
    ],
)
def test_edge_values_are_one_clear_sentence(env: dict[str, str], problem: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load(**env)
    assert [p for p in caught.value.problems if problem in p]


def test_errors_never_echo_a_key_put_in_the_wrong_setting(
    app_keys: tuple[str, str],
) -> None:
    with pytest.raises(SettingsError) as caught:
        load(
            GITHUB_APP_PRIVATE_KEY_PATH=app_keys[0],
            TWILL_API_URL="tw_live_0123456789abcdef",
        )
    text = " ".join(caught.value.problems)
    assert "PRIVATE KEY" not in text and "tw_live_0123456789abcdef" not in text


def test_an_ec_key_is_refused_since_github_signs_with_rsa() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    with pytest.raises(SettingsError, match="RSA"):
        load(GITHUB_APP_PRIVATE_KEY=pem)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (
            "postgres://u:p@h/db?sslmode=require",
            "postgresql+asyncpg://u:p@h/db?ssl=require",
        ),
        (
            "postgresql://u@h:5433/db?sslmode=verify-full&target_session_attrs=primary",
            "postgresql+asyncpg://u@h:5433/db?ssl=verify-full&target_session_attrs=primary",
        ),
        (
            "postgres://u@h/db?ssl=prefer&sslmode=prefer",
            "postgresql+asyncpg://u@h/db?ssl=prefer",
        ),
        (
            "postgres://u:p%40ss@h/db?sslmode=disable",
            "postgresql+asyncpg://u:p%40ss@h/db?ssl=disable",
        ),
        ("postgres://u@h/db", "postgresql+asyncpg://u@h/db"),
    ],
    ids=["require", "verify-full-and-more", "both-agree", "quoted-password", "none"],
)
def test_libpq_sslmode_becomes_asyncpgs_ssl(given: str, expected: str) -> None:
    assert load(DATABASE_URL=given).database_url == expected


@pytest.mark.parametrize(
    "given",
    [
        "postgresql://u@/db?host=/var/run/postgresql",
        "postgresql://u@/db?host=/var/run/postgresql&port=5433",
        "postgres://u@/db?host=db1,db2&port=5432,5433",
        "postgres://u@/db?host=db1:5432&host=db2:5433&sslmode=require",
    ],
    ids=["unix-socket", "unix-socket-port", "hosts-and-ports", "repeated-hosts"],
)
def test_host_and_port_options_reach_the_driver_as_given(given: str) -> None:
    url = make_url(load(DATABASE_URL=given).database_url)
    expected = make_url(given).query
    assert url.drivername == "postgresql+asyncpg"
    assert url.query["host"] == expected["host"]
    assert url.query.get("port") == expected.get("port")


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("host=/s&port=x", "DATABASE_URL option port must be a port number"),
        ("host=/s&port=70000", "DATABASE_URL option port must be a port number"),
        ("host=/s&port=5432&port=5433", "gives the option 'port' twice"),
        ("sslmode=on", "DATABASE_URL sslmode (or ssl) must be one of disable, allow"),
        ("ssl=true", "DATABASE_URL sslmode (or ssl) must be one of disable, allow"),
        ("sslmode=require&ssl=disable", "sets both sslmode and ssl, to different"),
        ("sslmode=require&sslmode=disable", "gives the option 'sslmode' twice"),
        ("channel_binding=require", "option 'channel_binding' is not one the"),
        ("sslkey=/k.pem", "set PGSSLKEY in the environment instead"),
        ("connect_timeout=10", "option 'connect_timeout' is not one the"),
    ],
    ids=[
        "port-word",
        "port-too-big",
        "port-twice",
        "bad-mode",
        "bad-ssl",
        "disagree",
        "twice",
        "channel-binding",
        "key",
        "timeout",
    ],
)
def test_libpq_options_asyncpg_lacks_get_one_sentence_without_the_password(
    query: str, problem: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        load(DATABASE_URL=f"postgres://bob:pw-never-shown@h/db?{query}")
    [line] = caught.value.problems
    assert problem in line
    assert "pw-never-shown" not in line


def test_secret_values_name_every_secret_for_redaction(
    app_keys: tuple[str, str],
) -> None:
    settings = load(
        TWILL_API_KEY="twill-key",
        GITHUB_APP_PRIVATE_KEY=app_keys[0],
        GITHUB_WEBHOOK_SECRET="old-hook-secret,new-hook-secret",
        BRIDGE_ADMIN_PASSWORD="admin-pass",
        DATABASE_URL="postgres://bob:db-pass@h/db",
    )
    values = settings.secret_values()
    assert {"twill-key", "old-hook-secret", "new-hook-secret", "admin-pass"} <= set(
        values
    )
    assert "db-pass" in values
    assert app_keys[0].strip() in values
    # Each line of the key's body too, never its BEGIN and END lines.
    assert app_keys[0].splitlines()[1] in values
    assert not any(
        value.startswith("-----") for value in values[1:] if "\n" not in value
    )
