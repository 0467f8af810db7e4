"""Fixtures for end-to-end tests that run the bridge as a process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import payloads
from tests.conftest import APP_ID, TWILL_KEY, WEBHOOK_SECRET
from tests.fakes.github import FakeGitHub
from tests.fakes.twill import FakeTwill
from tests.live import serve_in_thread


@pytest.fixture
def live(
    tmp_path: Path, app_keys: tuple[str, str], database_url: str
) -> Iterator[dict]:  # type: ignore[type-arg]
    """Fake Twill and GitHub on loopback ports, and the environment to reach them."""
    twill = FakeTwill(api_key=TWILL_KEY)
    github = FakeGitHub(
        app_id=APP_ID,
        public_key=app_keys[1],
        installations={payloads.REPO: payloads.INSTALLATION},
    )
    key_file = tmp_path / "app.pem"
    key_file.write_text(app_keys[0])
    with (
        serve_in_thread(twill.app()) as twill_url,
        serve_in_thread(github.app()) as github_url,
    ):
        env = {
            "TWILL_API_KEY": TWILL_KEY,
            "TWILL_API_URL": f"{twill_url}/api/v1",
            "GITHUB_API_URL": github_url,
            "GITHUB_APP_ID": str(APP_ID),
            "GITHUB_APP_PRIVATE_KEY_PATH": str(key_file),
            "GITHUB_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "DATABASE_URL": database_url,
            "BRIDGE_GITHUB_WRITE_INTERVAL_SECONDS": "0",
            "BRIDGE_WORKER_POLL_SECONDS": "0.1",
        }
        yield {"twill": twill, "github": github, "env": env, "cwd": tmp_path}
    assert github.problems == [], "requests to GitHub broke its REST description"
    assert twill.contract_errors == [], "requests to Twill broke its contract"
