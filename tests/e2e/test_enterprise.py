"""GitHub Enterprise Server: the API under /api/v3, the web host on its own."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from bridge.settings import Secret
from tests import payloads
from tests.conftest import Harness
from tests.e2e.test_setup import github_creates, manifest_form, open_setup

API = "http://ghe.test/api/v3"
WEB = "http://ghe.test"


async def test_a_delivery_becomes_a_task_and_a_comment_through_api_v3(
    make_harness: Callable[..., Any],
) -> None:
    bridge: Harness = await make_harness(github_api_url=API, github_web_url=WEB)

    answer = await bridge.deliver("issues", payloads.issues_labeled("twill"))
    assert answer.status_code == 202
    await bridge.drain()

    [comment] = bridge.github.issue_comments(payloads.REPO, 12)
    assert "twill.ai/tasks/task-1" in comment["body"]
    paths = [path for _, path in bridge.github.calls]
    assert paths and all(path.startswith("/api/v3/") for path in paths), paths
    assert "/api/v3/app/installations/77/access_tokens" in paths
    [dispatch] = await bridge.dispatches()
    assert dispatch.status == "reported"


async def test_sign_in_and_setup_go_to_the_enterprise_web_host(
    make_harness: Callable[..., Any],
) -> None:
    bridge: Harness = await make_harness(
        github_api_url=API,
        github_web_url=WEB,
        github_client_id="Iv1.fakeclientid",
        github_client_secret=Secret("fake-oauth-client-secret"),
        admin_logins=frozenset({"maintainer"}),
    )
    start = await bridge.client.get("/admin/oauth/start")
    assert start.headers["location"].startswith(f"{WEB}/login/oauth/authorize?")

    unconfigured: Harness = await make_harness(
        github_api_url=API,
        github_web_url=WEB,
        github_app_id=None,
        github_private_key=None,
        public_url="https://bridge.example.com",
        secrets_key=Secret("k" * 40),
    )
    await open_setup(unconfigured)
    action, manifest = await manifest_form(unconfigured)
    assert urlsplit(action)[:3] == ("http", "ghe.test", "/settings/apps/new")
    done = await unconfigured.client.get(
        await github_creates(unconfigured, action, manifest)
    )
    assert done.status_code == 200
    assert any(
        method == "POST" and path.startswith("/api/v3/app-manifests/")
        for method, path in unconfigured.github.calls
    )
    page = await unconfigured.client.get("/setup/manifest", params={"name": "x"})
    assert (
        "form-action 'self' http://ghe.test" in page.headers["content-security-policy"]
    )
