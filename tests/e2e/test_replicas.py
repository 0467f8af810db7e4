"""Several `twill-bridge serve` processes on one PostgreSQL: each task exactly once."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests import payloads
from tests.e2e.test_crash import FAST, dispatches
from tests.e2e.test_serve import post
from tests.fakes.github import FakeGitHub
from tests.fakes.twill import FakeTwill
from tests.live import BridgeProcess, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def postgres_only(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("replicas share a PostgreSQL database")


@pytest.mark.usefixtures("postgres_only")
def test_three_replicas_send_300_queued_triggers_each_exactly_once(
    live: dict, database_url: str
) -> None:  # type: ignore[type-arg]
    twill: FakeTwill = live["twill"]
    github: FakeGitHub = live["github"]
    receiver = BridgeProcess(
        {**live["env"], **FAST, "BRIDGE_WORKER": "false"}, live["cwd"]
    ).start()
    try:
        for number in range(1, 301):
            assert (
                post(
                    receiver, "issues", payloads.issues_labeled("twill", number=number)
                ).status_code
                == 202
            )
    finally:
        assert receiver.terminate() == 0
    assert {d.status for d in dispatches(database_url)} == {"queued"}

    replicas = [BridgeProcess({**live["env"], **FAST}, live["cwd"]) for _ in range(3)]
    try:
        for replica in replicas:
            replica.start()
        wait_until(
            lambda: (
                len(twill.tasks) >= 300
                and {d.status for d in dispatches(database_url)} == {"reported"}
            ),
            timeout=120,
        )
    finally:
        for replica in replicas:
            assert replica.terminate() == 0
    titles = [task["request"]["title"] for task in twill.tasks]
    assert len(titles) == len(set(titles)) == 300
    assert len(twill.requests) == 300
    assert all(len(github.issue_comments(payloads.REPO, n)) == 1 for n in range(1, 301))


@pytest.mark.usefixtures("postgres_only")
def test_one_delivery_sent_100_times_across_replicas_is_one_task(
    live: dict, database_url: str
) -> None:  # type: ignore[type-arg]
    twill: FakeTwill = live["twill"]
    replicas = [
        BridgeProcess({**live["env"], **FAST}, live["cwd"]).start() for _ in range(3)
    ]
    payload = payloads.issues_labeled("twill")
    delivery = str(uuid.uuid4())
    try:
        with ThreadPoolExecutor(max_workers=20) as pool:
            answers = list(
                pool.map(
                    lambda n: post(replicas[n % 3], "issues", payload, delivery),
                    range(100),
                )
            )
        assert sorted(a.status_code for a in answers) == [200] * 99 + [202]
        wait_until(lambda: dispatches(database_url)[0].status == "reported")
    finally:
        for replica in replicas:
            assert replica.terminate() == 0
    assert len(twill.requests) == 1
