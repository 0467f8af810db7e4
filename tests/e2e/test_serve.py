"""`twill-bridge serve` as a real process, against fake Twill and GitHub servers."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from bridge.db import create_engine, sessionmaker
from bridge.models import Dispatch
from bridge.signature import sign
from tests import payloads
from tests.conftest import TWILL_KEY, WEBHOOK_SECRET
from tests.fakes.github import FakeGitHub
from tests.fakes.twill import FakeTwill
from tests.live import BridgeProcess, wait_until

pytestmark = pytest.mark.slow


def post(
    bridge: BridgeProcess, event: str, payload: dict, delivery: str | None = None
) -> httpx.Response:  # type: ignore[type-arg]
    body = json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": sign(WEBHOOK_SECRET, body),
    }
    return httpx.post(
        f"{bridge.url}/api/github/webhooks", content=body, headers=headers, timeout=10
    )


def rows(url: str) -> list[Dispatch]:
    async def read() -> list[Dispatch]:
        engine = create_engine(url)
        async with sessionmaker(engine)() as session:
            found = list((await session.scalars(select(Dispatch))).all())
        await engine.dispose()
        return found

    return asyncio.run(read())


def test_labeled_plan_issue_end_to_end_through_a_served_process(
    live: dict, database_url: str
) -> None:  # type: ignore[type-arg]
    bridge = BridgeProcess(live["env"], live["cwd"]).start()
    try:
        answer = post(bridge, "issues", payloads.issues_labeled("twill-plan"))
        assert answer.status_code == 202
        github: FakeGitHub = live["github"]
        # The tracking comment may say "queued" first; it is edited once the task exists.
        wait_until(
            lambda: (
                "task-1"
                in "".join(c["body"] for c in github.issue_comments(payloads.REPO, 12))
            )
        )
        twill: FakeTwill = live["twill"]
        assert [r["userIntent"] for r in twill.requests] == ["PLAN"]
        [comment] = github.issue_comments(payloads.REPO, 12)
        assert "https://twill.ai/tasks/task-1" in comment["body"]
        wait_until(lambda: rows(database_url)[0].status == "reported")
        [row] = rows(database_url)
        assert (row.twill_task_id, row.twill_job_id) == ("tsk_1", "job_1")
        assert bridge.terminate() == 0
    finally:
        bridge.stop_quietly()
    logs = bridge.output()
    assert (
        WEBHOOK_SECRET not in logs
        and TWILL_KEY not in logs
        and "PRIVATE KEY" not in logs
    )
    assert '"msg": "task created"' in logs


def test_missing_credentials_start_in_dry_run_and_say_what_is_missing(
    tmp_path: Path, database_url: str
) -> None:
    env = {
        "DATABASE_URL": database_url,
        "BRIDGE_DATA_DIR": str(tmp_path),
        "TWILL_API_KEY": "",
        "GITHUB_APP_ID": "",
        "GITHUB_WEBHOOK_SECRET": "",
        "GITHUB_APP_PRIVATE_KEY": "",
        "GITHUB_APP_PRIVATE_KEY_PATH": "",
    }
    bridge = BridgeProcess(env, tmp_path).start()
    try:
        secret = (tmp_path / "webhook-secret").read_text().strip()
        body = json.dumps(payloads.issues_labeled("twill")).encode()
        headers = {
            "X-GitHub-Event": "issues",
            "X-GitHub-Delivery": "dry-1",
            "X-Hub-Signature-256": sign(secret, body),
        }
        answer = httpx.post(
            f"{bridge.url}/api/github/webhooks", content=body, headers=headers
        )
        assert answer.json()["outcome"] == "not_sent"
        unsigned = httpx.post(
            f"{bridge.url}/api/github/webhooks",
            content=body,
            headers={"X-GitHub-Event": "issues", "X-GitHub-Delivery": "dry-2"},
        )
        assert unsigned.status_code == 401
        assert bridge.terminate() == 0
    finally:
        bridge.stop_quietly()
    logs = bridge.output()
    assert "dry run" in logs and "TWILL_API_KEY is not set" in logs
    assert str(tmp_path / "webhook-secret") in logs
    assert secret not in logs
