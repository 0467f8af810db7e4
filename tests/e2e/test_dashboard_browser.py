"""The dashboard in headless Chromium, against `twill-bridge serve` and loopback fakes.

Debian's /usr/bin/chromium is driven by Playwright for Python (no browser
download). Screenshots go to artifacts/screenshots/; with
UPDATE_README_SCREENSHOT=1 the dispatch list's also goes to
docs/dispatch-list.png, the README's picture.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge.signature import sign
from tests import payloads
from tests.conftest import WEBHOOK_SECRET
from tests.fakes.twill import Fault
from tests.live import ROOT, BridgeProcess, wait_until

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SHOTS = ROOT / "artifacts" / "screenshots"
TOKEN = "browser-test-api-token"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    # CI sets BRIDGE_TEST_REQUIRE_BROWSER, so a missing browser fails there
    # instead of skipping the one test that drives the dashboard for real.
    pytest.mark.skipif(
        shutil.which(CHROMIUM) is None
        and not os.environ.get("BRIDGE_TEST_REQUIRE_BROWSER"),
        reason=f"{CHROMIUM} is absent: apt-get install -y chromium",
    ),
]


def deliver(bridge: BridgeProcess, payload: dict[str, Any], delivery: str) -> None:
    """A delivery signed as GitHub signs it, over real HTTP."""
    body = json.dumps(payload).encode()
    answer = httpx.post(
        f"{bridge.url}/api/github/webhooks",
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-GitHub-Event": "issues",
            "X-GitHub-Delivery": delivery,
            "X-Hub-Signature-256": sign(WEBHOOK_SECRET, body),
        },
        timeout=10,
    )
    assert answer.status_code == 202, answer.text


def api(bridge: BridgeProcess, path: str) -> Any:
    answer = httpx.get(
        f"{bridge.url}{path}", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.fixture
def served(live: dict[str, Any], database_url: str) -> Iterator[BridgeProcess]:
    """The bridge as a process, signing in through the fake GitHub's OAuth flow."""
    github_url = live["env"]["GITHUB_API_URL"]
    github = live["github"]
    env = {
        **live["env"],
        "GITHUB_WEB_URL": github_url,
        "GITHUB_CLIENT_ID": github.client_id,
        "GITHUB_CLIENT_SECRET": github.client_secret,
        "BRIDGE_ADMIN_LOGINS": "Maintainer",
        "BRIDGE_ADMIN_TOKEN": TOKEN,
        "BRIDGE_DATA_DIR": str(live["cwd"]),
    }
    bridge = BridgeProcess(env, live["cwd"]).start()
    try:
        yield bridge
    finally:
        bridge.stop_quietly()


@pytest.fixture
def browser_page(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh Chromium page; closed with its browser after the test."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            yield context.new_page()
        finally:
            browser.close()


def shot(page: Any, name: str, database: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{database}-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def test_sign_in_see_filter_open_retry_sign_out(
    served: BridgeProcess,
    live: dict[str, Any],
    browser_page: Any,
    database_url: str,
) -> None:
    page, base = browser_page, served.url
    database = database_url.split("+", 1)[0]
    failing = f"delivery-{uuid.uuid4()}"
    live["twill"].fail(Fault(status=400))  # the first task is refused: failed
    deliver(served, payloads.issues_labeled(number=12), failing)
    wait_until(lambda: api(served, "/api/dispatches")["counts"]["failed"] == 1)
    deliver(
        served,
        payloads.issues_labeled("twill-plan", number=13, title="Plan the widget API"),
        f"delivery-{uuid.uuid4()}",
    )
    wait_until(lambda: api(served, "/api/dispatches")["counts"]["reported"] == 1)

    # Without a session: the page sends to sign-in, the API refuses.
    page.goto(f"{base}/admin/dispatches")
    assert page.url == f"{base}/admin/login"
    shot(page, "sign-in", database)
    assert httpx.get(f"{base}/api/dispatches", timeout=10).status_code == 401

    # Sign in with GitHub (the fake approves as "maintainer").
    page.click("#sign-in-github")
    page.wait_for_url(f"{base}/admin")
    assert page.text_content("#signed-in-as") == "maintainer"
    assert page.locator("#chart svg").count() == 1
    shot(page, "overview", database)

    # The list shows both dispatches, newest first, with their links.
    page.goto(f"{base}/admin/dispatches")
    rows = page.locator("#dispatches tbody tr")
    assert rows.count() == 2
    assert "Plan the widget API" in rows.nth(0).inner_text()
    assert rows.nth(1).locator("td.status-failed").inner_text() == "failed"
    assert rows.nth(0).locator("a", has_text="task").count() == 1
    assert rows.nth(0).locator("a", has_text="comment").count() == 1
    listed = shot(page, "dispatch-list", database)
    if database == "sqlite" and os.environ.get("UPDATE_README_SCREENSHOT"):
        # Opt-in, so that a test run leaves the checkout as it found it.
        shutil.copy(listed, ROOT / "docs" / "dispatch-list.png")

    # Filter by status.
    page.select_option("select[name=status]", "failed")
    page.click("button:has-text('Filter')")
    page.wait_for_url("**status=failed**")
    assert rows.count() == 1
    assert "#12" in rows.nth(0).inner_text()
    shot(page, "filtered", database)

    # Its detail: what was sent, the timeline, the delivery id.
    rows.nth(0).locator("td a").first.click()
    page.wait_for_selector("#dispatch-status")
    assert page.text_content("#dispatch-status") == "failed"
    assert failing in page.text_content("#deliveries")
    assert "Widgets crash on empty input" in page.text_content("#command")
    assert '"userIntent": "SWE"' in page.text_content("#request")
    shot(page, "detail", database)
    detail_url = page.url

    # A retry whose CSRF token is wrong is refused and changes nothing.
    page.locator("form[action$='/retry'] input[name=csrf]").evaluate(
        "field => { field.value = 'forged'; }"
    )
    page.click("#retry")
    assert "Refused" in page.text_content("h1")
    page.goto(detail_url)
    assert page.text_content("#dispatch-status") == "failed"

    # With the page's own token it is queued again, and the worker sends it.
    page.click("#retry")
    page.wait_for_selector("#notice")
    assert "Queued again" in page.text_content("#notice")
    timeline = page.text_content("#timeline")
    assert "retry requested by maintainer" in timeline
    dispatch_id = int(detail_url.rsplit("/", 1)[-1])
    wait_until(
        lambda: api(served, f"/api/dispatches/{dispatch_id}")["status"] == "reported"
    )
    page.goto(detail_url)
    assert page.text_content("#dispatch-status") == "reported"
    shot(page, "retried", database)

    # Sign out: the session is gone.
    page.click("button:has-text('Sign out')")
    page.wait_for_url(f"{base}/admin/login")
    page.goto(f"{base}/admin/dispatches")
    assert page.url == f"{base}/admin/login"
    refused = page.request.get(f"{base}/api/dispatches")
    assert refused.status == 401
