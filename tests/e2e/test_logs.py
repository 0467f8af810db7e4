"""The JSON log lines of whole runs: one line per step, with the fields to follow a
trigger through them, and no secret anywhere, even at DEBUG."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from bridge import log
from bridge.signature import sign
from tests import payloads
from tests.conftest import TWILL_KEY, WEBHOOK_SECRET, Harness
from tests.fakes.twill import Fault

TRACE = ("delivery_id", "dispatch_id", "event", "repository", "issue")


class Captured:
    """The bridge's log lines, formatted as in production (JSON), at DEBUG."""

    def __init__(self) -> None:
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(log.JsonFormatter())

    def text(self) -> str:
        return self.stream.getvalue()

    def lines(self) -> list[dict]:  # type: ignore[type-arg]
        return [json.loads(line) for line in self.text().splitlines()]


@pytest.fixture
def captured() -> Iterator[Captured]:
    capture = Captured()
    level = log.LOGGER.level
    log.LOGGER.addHandler(capture.handler)
    log.LOGGER.setLevel(logging.DEBUG)
    yield capture
    log.LOGGER.removeHandler(capture.handler)
    log.LOGGER.setLevel(level)


def steps(lines: list[dict], delivery_id: str) -> list[dict]:  # type: ignore[type-arg]
    return [line for line in lines if line.get("delivery_id") == delivery_id]


def secrets_of(bridge: Harness, app_key: str) -> list[str]:
    """Every credential the run handled: none may reach a log line."""
    pem_lines = [line for line in app_key.splitlines() if "PRIVATE KEY" not in line]
    return [
        WEBHOOK_SECRET,
        TWILL_KEY,
        *pem_lines,
        *bridge.github.tokens,  # installation tokens the fake issued
        "ghs_",
        "eyJ",  # the start of any JWT, the App's own among them
    ]


async def run_label_and_comment(bridge: Harness) -> dict[str, int]:
    label = payloads.issues_labeled("twill-plan")
    comment = payloads.comment_created(
        "/twill new ask why does this crash?", comment_id=556
    )
    await bridge.deliver("issues", label, delivery_id="d-label")
    await bridge.deliver("issue_comment", comment, delivery_id="d-comment")
    await bridge.drain()
    return {d.delivery_id: d.id for d in await bridge.dispatches()}


async def test_every_step_of_a_run_is_one_line_that_names_its_trigger(
    bridge: Harness, captured: Captured, app_keys: tuple[str, str]
) -> None:
    dispatch_ids = await run_label_and_comment(bridge)
    lines = captured.lines()

    for delivery_id, event in (("d-label", "issues"), ("d-comment", "issue_comment")):
        mine = steps(lines, delivery_id)
        assert [line["msg"] for line in mine] == [
            "delivery recorded",
            "trigger checked",
            "sending to twill",
            "task created",
            "issue told",
        ]
        for line in mine:
            assert {field: line.get(field) for field in TRACE} == {
                "delivery_id": delivery_id,
                "dispatch_id": dispatch_ids[delivery_id],
                "event": event,
                "repository": payloads.REPO,
                "issue": 12,
            }, line["msg"]
            assert line["level"] in ("info", "debug") and line["ts"]
    [recorded] = [x for x in steps(lines, "d-label") if x["msg"] == "delivery recorded"]
    assert (recorded["action"], recorded["outcome"]) == ("labeled", "queued")

    for secret in secrets_of(bridge, app_keys[0]):
        assert secret not in captured.text()


async def test_failures_and_refusals_log_no_secret_even_when_a_peer_echoes_it(
    bridge: Harness, captured: Captured, app_keys: tuple[str, str]
) -> None:
    body = {"error": {"message": f"key {TWILL_KEY} is not valid here"}}
    bridge.twill.fail(Fault(status=400, body=body))
    await bridge.deliver(
        "issues", payloads.issues_labeled("twill"), delivery_id="d-bad"
    )
    forged = json.dumps(payloads.issues_labeled("twill-ask")).encode()
    await bridge.deliver(
        "issues",
        None,
        delivery_id="d-forged",
        body=forged,
        headers={"X-Hub-Signature-256": sign("not-the-secret", forged)},
    )
    bridge.github.revoke_tokens()  # the next call gets a 401, then a new token
    await bridge.drain()
    lines = captured.lines()

    refused = [x for x in lines if x["msg"] == "twill refused or failed"]
    assert [(x["delivery_id"], x["status"], x["error"]) for x in refused] == [
        ("d-bad", 400, "TwillInvalid")
    ]
    [forgery] = [x for x in lines if x["msg"] == "delivery refused"]
    assert forgery["delivery_id"] == "d-forged"
    for secret in secrets_of(bridge, app_keys[0]):
        assert secret not in captured.text()


def test_the_format_is_json_off_a_terminal_and_text_on_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        for tty, expected in ((False, log.JsonFormatter), (True, log.TextFormatter)):
            monkeypatch.setattr("sys.stderr.isatty", lambda tty=tty: tty)
            log.configure("INFO", "auto")
            assert isinstance(root.handlers[0].formatter, expected)
        log.configure("INFO", "text")
        assert isinstance(root.handlers[0].formatter, log.TextFormatter)
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)


def test_a_text_line_carries_the_same_fields() -> None:
    record = logging.LogRecord(
        "twill_bridge", logging.INFO, __file__, 1, "task created", None, None
    )
    record.fields = {"dispatch_id": 3, "repository": "o/r", "issue": 12}
    line = log.TextFormatter().format(record)
    assert line.endswith("INFO    task created dispatch_id=3 repository=o/r issue=12")
