"""Sealing and writing the App's credentials, and which settings win."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from bridge.credentials import (
    AppCredentials,
    CredentialsError,
    env_lines,
    seal,
    unseal,
    with_credentials,
    write_file,
)
from bridge.models import GitHubApp
from bridge.settings import Secret, Settings, SettingsError, load_settings

ANSWER = {
    "id": 42,
    "slug": "twill-bridge",
    "owner": {"login": "octo-org"},
    "html_url": "https://github.com/apps/twill-bridge",
    "client_id": "Iv23li0123",
    "client_secret": "c" * 40,
    "webhook_secret": "w" * 40,
}


@pytest.fixture
def credentials(app_keys: tuple[str, str]) -> AppCredentials:
    return AppCredentials.from_conversion({**ANSWER, "pem": app_keys[0]})


def test_sealed_credentials_open_only_with_their_key(
    credentials: AppCredentials,
) -> None:
    key = Secret("a" * 32)
    sealed = seal(credentials, key)
    assert "PRIVATE KEY" not in sealed and "w" * 40 not in sealed
    row = GitHubApp(
        app_id=42,
        slug="twill-bridge",
        owner="octo-org",
        html_url="https://github.com/apps/twill-bridge",
        client_id="Iv23li0123",
        storage="database",
        sealed=sealed,
    )
    assert unseal(row, key) == credentials
    with pytest.raises(CredentialsError, match="does not open"):
        unseal(row, Secret("b" * 32))
    with pytest.raises(CredentialsError, match="BRIDGE_SECRETS_KEY is not set"):
        unseal(row, None)


def test_the_file_is_owner_only_and_reads_back_as_settings(
    credentials: AppCredentials, tmp_path: Path
) -> None:
    path = tmp_path / "deep" / "github-app.env"
    write_file(path, credentials)
    assert path.stat().st_mode & 0o777 == 0o600
    settings = load_settings({"BRIDGE_CREDENTIALS_FILE": str(path)}, env_file=None)
    assert settings.github_app_id == 42
    assert settings.github_private_key == Secret(
        credentials.private_key.reveal().strip()
    )
    assert settings.github_client_id == "Iv23li0123"
    # The environment wins over the file, setting by setting.
    over = load_settings(
        {"BRIDGE_CREDENTIALS_FILE": str(path), "GITHUB_WEBHOOK_SECRET": "mine"},
        env_file=None,
    )
    assert over.webhook_secrets == (Secret("mine"),)
    assert "PRIVATE KEY" in env_lines(credentials)  # the file is the one place it goes


def test_the_default_file_lives_in_the_data_dir(
    credentials: AppCredentials, tmp_path: Path
) -> None:
    write_file(tmp_path / "github-app.env", credentials)
    settings = load_settings({"BRIDGE_DATA_DIR": str(tmp_path)}, env_file=None)
    assert settings.github_app_id == 42
    assert settings.credentials_file == tmp_path / "github-app.env"


def test_stored_credentials_fill_only_what_the_environment_left(
    credentials: AppCredentials, app_keys: tuple[str, str]
) -> None:
    empty = with_credentials(Settings(), credentials)
    assert (empty.github_app_id, empty.github_client_id) == (42, "Iv23li0123")
    assert empty.webhook_secrets == (Secret("w" * 40),)
    explicit = Settings(
        github_app_id=7,
        github_private_key=Secret(app_keys[0]),
        webhook_secrets=(Secret("mine"),),
        github_client_id="Iv1.other",
        github_client_secret=Secret("x"),
    )
    assert with_credentials(explicit, credentials) == explicit
    # A generated webhook secret is not an explicit one: GitHub's replaces it.
    generated = replace(
        Settings(),
        webhook_secrets=(Secret("g" * 64),),
        webhook_secret_file=Path("webhook-secret"),
    )
    assert with_credentials(generated, credentials).webhook_secrets == (
        Secret("w" * 40),
    )


def test_an_answer_without_id_or_key_is_refused() -> None:
    with pytest.raises(CredentialsError):
        AppCredentials.from_conversion({"slug": "x"})


@pytest.mark.parametrize(
    ("environ", "problem"),
    [
        ({"BRIDGE_SECRETS_KEY": "short"}, "BRIDGE_SECRETS_KEY must be at least 32"),
        (
            {"BRIDGE_REDELIVER_INTERVAL_SECONDS": "-1"},
            "BRIDGE_REDELIVER_INTERVAL_SECONDS",
        ),
        ({"BRIDGE_REDELIVER_WINDOW_SECONDS": "10"}, "BRIDGE_REDELIVER_WINDOW_SECONDS"),
    ],
)
def test_bad_setup_settings_are_named(environ: dict[str, str], problem: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings(environ, env_file=None)
    assert any(problem in p for p in raised.value.problems)
    assert "short" not in str(raised.value)  # a key is never echoed
