"""`/setup`: the GitHub App registered from a manifest, through the real pages.

The browser's part is played by hand: the bridge's pages are fetched with
the harness client (which keeps cookies), the manifest form is posted to the
fake GitHub's web host, and GitHub's redirect is followed back to the bridge.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import select

from bridge import app as app_module
from bridge.credentials import load, offer_setup_token
from bridge.models import GitHubApp
from bridge.settings import Secret, load_settings
from bridge.signature import sign
from tests import payloads
from tests.conftest import Harness

PUBLIC = "https://bridge.example.com"
KEY = "k" * 40


async def token_of(bridge: Harness) -> str:
    """The setup token, as `serve` offers it and the operator reads it."""
    path = await offer_setup_token(bridge.sessions, bridge.settings.data_dir)
    return path.read_text().strip()


async def open_setup(bridge: Harness) -> None:
    """Prove the token, as the operator would from the setup-token file."""
    answer = await bridge.client.post(
        "/setup", data={"token": await token_of(bridge)}, follow_redirects=True
    )
    assert answer.status_code == 200
    assert "App name" in answer.text


async def manifest_form(bridge: Harness, **query: str) -> tuple[str, dict[str, Any]]:
    """The manifest page's form: where it posts, and the manifest it carries."""
    page = await bridge.client.get(
        "/setup/manifest", params={"name": "Twill bridge", **query}
    )
    assert page.status_code == 200, page.text
    action = html.unescape(
        re.search(r'<form method="post" action="([^"]+)"', page.text)[1]
    )
    raw = re.search(r'name="manifest" value="([^"]+)"', page.text)[1]
    return action, json.loads(html.unescape(raw))


async def github_creates(bridge: Harness, action: str, manifest: dict[str, Any]) -> str:
    """Post the form to the fake GitHub; the path and query it sends the browser to."""
    async with httpx.AsyncClient(transport=bridge.github_transport) as browser:
        answer = await browser.post(action, data={"manifest": json.dumps(manifest)})
    assert answer.status_code == 302
    back = urlsplit(answer.headers["location"])
    assert f"{back.scheme}://{back.netloc}" == PUBLIC
    return f"{back.path}?{back.query}"


async def register(bridge: Harness, **query: str) -> httpx.Response:
    await open_setup(bridge)
    action, manifest = await manifest_form(bridge, **query)
    return await bridge.client.get(await github_creates(bridge, action, manifest))


@pytest.fixture
def unconfigured(make_harness: Callable[..., Any]) -> Callable[..., Any]:
    """A harness with a Twill key but no App yet, as a new user starts."""

    async def build(**overrides: Any) -> Harness:
        settings = {
            "github_app_id": None,
            "github_private_key": None,
            "webhook_secrets": (),
            "public_url": PUBLIC,
            "github_web_url": "http://github.test",
        }
        return await make_harness(**{**settings, **overrides})

    return build


@pytest.mark.parametrize("storage", ["database", "file"])
async def test_setup_registers_the_app_and_the_bridge_serves_at_once(
    unconfigured: Callable[..., Any],
    storage: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    overrides: dict[str, Any] = (
        {"secrets_key": Secret(KEY)}
        if storage == "database"
        else {"credentials_file": tmp_path / "creds" / "github-app.env"}
    )
    bridge: Harness = await unconfigured(**overrides)
    assert bridge.app.state.github is None  # dry-run: no App yet

    await open_setup(bridge)
    action, manifest = await manifest_form(bridge, org="octo-org")
    assert action.startswith(
        "http://github.test/organizations/octo-org/settings/apps/new?state="
    )
    assert manifest["hook_attributes"] == {
        "url": f"{PUBLIC}/api/github/webhooks",
        "active": True,
    }
    assert manifest["redirect_url"] == f"{PUBLIC}/setup/callback"
    assert manifest["callback_urls"] == [f"{PUBLIC}/admin/oauth/callback"]
    assert manifest["default_permissions"]["contents"] == "read"
    assert set(manifest["default_events"]) == {
        "issues",
        "issue_comment",
        "pull_request",
    }

    done = await bridge.client.get(await github_creates(bridge, action, manifest))

    assert done.status_code == 200, done.text
    assert "is registered" in done.text
    [made] = bridge.github.registered
    answer = made["answer"]
    assert f"{answer['html_url']}/installations/new" in done.text
    for secret in (answer["pem"], answer["webhook_secret"], answer["client_secret"]):
        assert secret.splitlines()[1 if "\n" in secret else 0] not in done.text
        assert not any(
            secret.splitlines()[-2 if "\n" in secret else 0] in str(r.__dict__)
            for r in caplog.records
        )
    # The running process took the App up: the new secret verifies deliveries,
    # the worker's clients exist, and a trigger goes all the way to a comment.
    settings = bridge.app.state.settings
    assert settings.github_app_id == answer["id"]
    assert settings.oauth_enabled
    raw = json.dumps(payloads.issues_labeled("twill")).encode()
    refused = await bridge.client.post(
        "/api/github/webhooks",
        content=raw,
        headers={
            "X-GitHub-Event": "issues",
            "X-GitHub-Delivery": "d-old",
            "X-Hub-Signature-256": sign("not-the-secret", raw),
        },
    )
    assert refused.status_code == 401
    accepted = await bridge.deliver(
        "issues",
        payloads.issues_labeled("twill"),
        delivery_id="d-new",
        secret=answer["webhook_secret"],
    )
    assert accepted.status_code == 202
    bridge.settings = bridge.app.state.settings  # the harness's worker, likewise
    await bridge.drain(bridge.new_worker("after-setup"))
    [comment] = bridge.github.issue_comments(payloads.REPO, 12)
    assert "twill.ai/tasks/task-1" in comment["body"]

    # Kept where the settings say, and readable at the next start.
    async with bridge.sessions() as session:
        row = await session.scalar(select(GitHubApp))
    assert (row.app_id, row.storage) == (answer["id"], storage)
    if storage == "database":
        assert row.sealed and answer["webhook_secret"] not in row.sealed
        assert "PRIVATE KEY" not in row.sealed
    else:
        path = overrides["credentials_file"]
        assert row.sealed is None
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        restarted = load_settings({"BRIDGE_CREDENTIALS_FILE": str(path)}, env_file=None)
        assert restarted.github_app_id == answer["id"]
        assert restarted.github_private_key == Secret(answer["pem"].strip())
        assert restarted.webhook_secrets == (Secret(answer["webhook_secret"]),)
        assert restarted.github_client_secret == Secret(answer["client_secret"])
    stored = await load(bridge.sessions, bridge.settings)
    assert stored is not None
    assert stored.private_key.reveal().strip() == answer["pem"].strip()

    # And /setup is closed.
    for path, method in (
        ("/setup", "GET"),
        ("/setup/manifest", "GET"),
        ("/setup", "POST"),
    ):
        closed = await bridge.client.request(method, path)
        assert closed.status_code == 410
        assert "setup is closed" in closed.text


async def test_another_replica_closes_setup_and_takes_the_app_up(
    unconfigured: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app_module, "WATCH_SECONDS", 0.05)
    first: Harness = await unconfigured(secrets_key=Secret(KEY))
    second: Harness = await unconfigured(secrets_key=Secret(KEY))

    done = await register(first)

    assert done.status_code == 200
    assert (await second.client.get("/setup")).status_code == 410
    app_id = first.app.state.settings.github_app_id
    wait_for = second.app.state
    for _ in range(100):
        if wait_for.settings.github_app_id == app_id:
            break
        await asyncio.sleep(0.05)
    assert wait_for.settings.github_app_id == app_id
    assert wait_for.github is not None


async def test_setup_needs_the_token(unconfigured: Callable[..., Any]) -> None:
    bridge: Harness = await unconfigured(secrets_key=Secret(KEY))

    page = await bridge.client.get("/setup")
    assert page.status_code == 200 and "Setup token" in page.text
    assert (await bridge.client.get("/setup/manifest")).status_code == 303
    wrong = await bridge.client.post("/setup", data={"token": "guess"})
    assert wrong.status_code == 403 and "not the setup token" in wrong.text
    assert "App name" not in (await bridge.client.get("/setup")).text
    # A forged cookie is no proof either.
    bridge.client.cookies.set("twill_bridge_setup", "e30.forged.sig", path="/setup")
    assert "Setup token" in (await bridge.client.get("/setup")).text


async def test_the_setup_cookie_is_secure_behind_a_tls_proxy(
    unconfigured: Callable[..., Any],
) -> None:
    # The harness's browser speaks https to a proxy that passes plain http on.
    bridge: Harness = await unconfigured(secrets_key=Secret(KEY))
    proof = await bridge.client.post("/setup", data={"token": await token_of(bridge)})
    assert proof.status_code == 303
    assert "secure" in proof.headers["set-cookie"].lower()


async def test_a_code_from_another_flow_is_refused_and_not_exchanged(
    unconfigured: Callable[..., Any],
) -> None:
    bridge: Harness = await unconfigured(secrets_key=Secret(KEY))
    await open_setup(bridge)
    action, manifest = await manifest_form(bridge)
    back = await github_creates(bridge, action, manifest)
    forged = re.sub(r"state=[^&]+", "state=someone-elses", back)

    refused = await bridge.client.get(forged)
    assert refused.status_code == 403
    assert "does not belong to the setup" in refused.text
    assert bridge.github.registered == []
    # No cookie at all (a link sent to the operator by someone else): refused too.
    bridge.client.cookies.clear()
    assert (await bridge.client.get(back)).status_code == 403
    assert bridge.github.registered == [] and len(bridge.github.manifest_codes) == 1


async def test_an_expired_code_says_to_start_again(
    unconfigured: Callable[..., Any],
) -> None:
    bridge: Harness = await unconfigured(secrets_key=Secret(KEY))
    await open_setup(bridge)
    action, manifest = await manifest_form(bridge)
    back = await github_creates(bridge, action, manifest)
    bridge.github.manifest_codes.clear()  # an hour went by

    answer = await bridge.client.get(back)
    assert answer.status_code == 400
    assert "works once and for an hour" in answer.text
    assert (await bridge.client.get("/setup")).status_code == 200  # still open


async def test_setup_says_what_is_missing_before_anything_is_made(
    unconfigured: Callable[..., Any], tmp_path: Path
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    bridge: Harness = await unconfigured(
        public_url=None, credentials_file=locked / "github-app.env"
    )
    await open_setup(bridge)
    page = await bridge.client.get("/setup")
    assert "BRIDGE_PUBLIC_URL is not set" in page.text
    if not os.access(locked, os.W_OK):  # root may write anywhere
        assert "cannot write" in page.text
    refused = await bridge.client.get("/setup/manifest", params={"name": "x"})
    assert refused.status_code == 409


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"name": ""}, "give the App a name"),
        ({"name": "x" * 35}, "at most 34 characters"),
        ({"name": "ok", "org": "bad/org"}, "is not an organisation"),
    ],
    ids=["no-name", "long-name", "bad-org"],
)
async def test_bad_answers_on_the_form_are_named(
    unconfigured: Callable[..., Any], query: dict[str, str], message: str
) -> None:
    bridge: Harness = await unconfigured(secrets_key=Secret(KEY))
    await open_setup(bridge)
    answer = await bridge.client.get("/setup/manifest", params=query)
    assert answer.status_code == 400
    assert message in html.unescape(answer.text)


async def test_setup_is_closed_when_the_settings_name_an_app(bridge: Harness) -> None:
    answer = await bridge.client.get("/setup")
    assert answer.status_code == 410
    assert "setup is closed" in answer.text


async def test_the_environment_wins_over_the_stored_webhook_secret(
    unconfigured: Callable[..., Any],
) -> None:
    bridge: Harness = await unconfigured(
        secrets_key=Secret(KEY), webhook_secrets=(Secret("from-the-environment"),)
    )
    done = await register(bridge)
    assert "GITHUB_WEBHOOK_SECRET is set in the environment" in done.text
    assert bridge.app.state.settings.webhook_secrets == (
        Secret("from-the-environment"),
    )


async def test_the_database_keeps_only_a_digest_any_replica_accepts(
    unconfigured: Callable[..., Any], tmp_path: Path
) -> None:
    from bridge.models import BridgeSecret

    first: Harness = await unconfigured(secrets_key=Secret(KEY))
    second: Harness = await unconfigured(
        secrets_key=Secret(KEY), data_dir=tmp_path / "second"
    )
    async with first.sessions() as session:  # what an older version left
        session.add(BridgeSecret(name="setup-token", value="raw-token-of-old"))
        await session.commit()

    token = await token_of(first)  # the first replica starts, writes its file
    own = await token_of(second)  # the second has a data dir of its own

    async with first.sessions() as session:
        values = (
            await session.execute(select(BridgeSecret.name, BridgeSecret.value))
        ).all()
    stored = " ".join(f"{name} {value}" for name, value in values)
    assert (
        token not in stored and own not in stored and "raw-token-of-old" not in stored
    )
    assert own != token
    # Each replica takes either token; the page asks for nothing else.
    for bridge, given in ((second, token), (first, own)):
        answer = await bridge.client.post(
            "/setup", data={"token": given}, follow_redirects=True
        )
        assert answer.status_code == 200 and "App name" in answer.text
    # A restart keeps the file's token; the raw value in the old row is no token.
    assert await token_of(first) == token
    wrong = await second.client.post("/setup", data={"token": "raw-token-of-old"})
    assert wrong.status_code == 403
    # Done on one replica, every token is gone, and so is the proof of it.
    assert (await register(second)).status_code == 200
    async with first.sessions() as session:
        left = (await session.scalars(select(BridgeSecret.name))).all()
    assert not [name for name in left if name.startswith("setup-token")]
    assert (await first.client.get("/setup/manifest")).status_code == 410


async def test_a_token_file_others_can_read_is_replaced_not_trusted(
    unconfigured: Callable[..., Any],
) -> None:
    bridge: Harness = await unconfigured(secrets_key=Secret(KEY))
    path = bridge.settings.data_dir / "setup-token"
    path.write_text("f" * 64 + "\n")
    path.chmod(0o644)

    token = await token_of(bridge)

    assert token != "f" * 64
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    refused = await bridge.client.post("/setup", data={"token": "f" * 64})
    assert refused.status_code == 403


async def started_setup(bridge: Harness, client: httpx.AsyncClient, name: str) -> str:
    """One browser's setup up to GitHub's redirect back: the path to follow."""
    proof = await client.post(
        "/setup", data={"token": await token_of(bridge)}, follow_redirects=True
    )
    assert proof.status_code == 200
    page = await client.get("/setup/manifest", params={"name": name})
    assert page.status_code == 200, page.text
    action = html.unescape(
        re.search(r'<form method="post" action="([^"]+)"', page.text)[1]
    )
    raw = re.search(r'name="manifest" value="([^"]+)"', page.text)[1]
    return await github_creates(bridge, action, json.loads(html.unescape(raw)))


@pytest.mark.parametrize("storage", ["file", "database"])
async def test_two_setups_finishing_at_once_keep_one_app_everywhere(
    unconfigured: Callable[..., Any], tmp_path: Path, storage: str
) -> None:
    creds = tmp_path / "creds" / "github-app.env"
    bridge: Harness = await unconfigured(
        credentials_file=creds,
        **({"secrets_key": Secret(KEY)} if storage == "database" else {}),
    )
    other = bridge.browser()
    back_a = await started_setup(bridge, bridge.client, "App A")
    back_b = await started_setup(bridge, other, "App B")

    answers = await asyncio.gather(bridge.client.get(back_a), other.get(back_b))
    await other.aclose()

    # The loser hears that another setup finished (409), or that setup is closed.
    assert sorted(a.status_code for a in answers)[0] == 200
    assert sorted(a.status_code for a in answers)[1] in (409, 410)
    made = {r["answer"]["slug"]: r["answer"]["id"] for r in bridge.github.registered}
    winner = made["app-a" if answers[0].status_code == 200 else "app-b"]
    loser = next(answer for answer in answers if answer.status_code != 200)
    assert "Another setup finished first" in loser.text or (
        "setup is closed" in loser.text
    )
    async with bridge.sessions() as session:
        row = await session.scalar(select(GitHubApp))
    assert row.app_id == winner
    assert bridge.app.state.settings.github_app_id == winner
    if storage == "file":
        # What the next start reads is the winner too.
        restarted = load_settings(
            {"BRIDGE_CREDENTIALS_FILE": str(creds)}, env_file=None
        )
        assert restarted.github_app_id == winner
        assert [p.name for p in creds.parent.iterdir()] == ["github-app.env"]
    else:
        assert not creds.exists()
    assert (await load(bridge.sessions, bridge.settings)).app_id == winner


async def test_credentials_that_cannot_be_written_leave_setup_open(
    unconfigured: Callable[..., Any], tmp_path: Path
) -> None:
    folder = tmp_path / "creds"
    bridge: Harness = await unconfigured(credentials_file=folder / "github-app.env")
    await open_setup(bridge)
    action, manifest = await manifest_form(bridge)
    back = await github_creates(bridge, action, manifest)
    folder.write_text("a file where the folder should be\n")  # even root fails

    failed = await bridge.client.get(back)

    assert failed.status_code == 503
    assert "could not write" in failed.text
    async with bridge.sessions() as session:
        assert await session.scalar(select(GitHubApp)) is None
    assert bridge.app.state.settings.github_app_id is None
    folder.unlink()
    assert (await bridge.client.get("/setup")).status_code == 200  # try again
    assert (await register(bridge)).status_code == 200


@pytest.mark.slow
def test_serve_says_where_the_setup_token_is_and_never_what(tmp_path: Path) -> None:
    from tests.live import BridgeProcess

    umask = os.umask(0o022)  # the usual one, which makes files 0644
    try:
        bridge = BridgeProcess({"BRIDGE_PUBLIC_URL": PUBLIC}, tmp_path).start()
    finally:
        os.umask(umask)
    try:
        page = httpx.get(f"{bridge.url}/setup")
        assert page.status_code == 200 and "Setup token" in page.text
        # While it runs, SQLite's -wal and -shm files are there too.
        database = [tmp_path / f"twill-bridge.db{end}" for end in ("", "-wal", "-shm")]
        assert all(path.exists() for path in database)
        modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in database}
        token = (tmp_path / "setup-token").read_text().strip()
        # The database holds the token's digest only: its bytes never hold the token.
        assert not any(token.encode() in path.read_bytes() for path in database)
    finally:
        assert bridge.terminate() == 0
    assert modes == dict.fromkeys(modes, 0o600)
    assert token not in (tmp_path / "twill-bridge.db").read_text(errors="replace")
    token_file = tmp_path / "setup-token"
    assert len(token) >= 32
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    [line] = [
        json.loads(line)
        for line in bridge.output().splitlines()
        if "no GitHub App yet" in line
    ]
    assert line["setup_url"] == f"{PUBLIC}/setup"
    assert line["token_file"] == str(token_file.resolve())
    assert token not in bridge.output()
