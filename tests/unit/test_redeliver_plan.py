"""Which failed deliveries a pass asks for again, as a table; and the helpers."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

import pytest

from bridge.cli import _duration
from bridge.redeliver import Asked, HookDelivery, lookback_since, plan

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def attempt(
    guid: str, code: int | None, minutes_ago: int, hook_id: int = 0
) -> HookDelivery:
    return HookDelivery(
        id=hook_id or minutes_ago,
        guid=guid,
        delivered_at=NOW - timedelta(minutes=minutes_ago),
        status_code=code,
        event="issues",
        action="labeled",
        redelivery=False,
    )


# (id, attempts, received guids, asked before, guids to redeliver)
CASES = [
    ("one-failure", [attempt("a", 502, 5)], set(), {}, ["a"]),
    ("timeout-has-no-code", [attempt("a", None, 5)], set(), {}, ["a"]),
    ("a-later-success", [attempt("a", 502, 9), attempt("a", 200, 5)], set(), {}, []),
    ("202-is-a-success", [attempt("a", 202, 5)], set(), {}, []),
    ("401-is-a-failure", [attempt("a", 401, 5)], set(), {}, ["a"]),
    ("we-recorded-it", [attempt("a", 504, 5)], {"a"}, {}, []),
    (
        "asked-3-times",
        [attempt("a", 502, 50)],
        set(),
        {"a": Asked(3, NOW - timedelta(hours=1))},
        [],
    ),
    (
        "asked-a-minute-ago",
        [attempt("a", 502, 50)],
        set(),
        {"a": Asked(1, NOW - timedelta(minutes=1))},
        [],
    ),
    (
        "asked-once-long-ago",
        [attempt("a", 502, 50)],
        set(),
        {"a": Asked(1, NOW - timedelta(minutes=30))},
        ["a"],
    ),
    (
        "oldest-first",
        [attempt("new", 502, 1), attempt("old", 502, 60)],
        set(),
        {},
        ["old", "new"],
    ),
]


@pytest.mark.parametrize(
    ("attempts", "received", "asked", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_plan(
    attempts: list[HookDelivery],
    received: set[str],
    asked: dict[str, Asked],
    expected: list[str],
) -> None:
    assert [a.guid for a in plan(attempts, received, asked, NOW).redeliver] == expected


def test_the_newest_failed_attempt_of_a_guid_is_the_one_asked_for() -> None:
    attempts = [attempt("a", 502, 30, hook_id=1), attempt("a", 503, 10, hook_id=2)]
    assert [a.id for a in plan(attempts, set(), {}, NOW).redeliver] == [2]


@pytest.mark.parametrize(
    "item",
    [
        None,
        [],
        {"guid": "a", "delivered_at": "2026-12-04T10:00:00Z"},
        {"id": 1, "delivered_at": "2026-12-04T10:00:00Z"},
        {"id": 1, "guid": "a", "delivered_at": "yesterday"},
        {"id": 1, "guid": "a", "delivered_at": "2026-12-04T10:00:00"},
    ],
    ids=["none", "list", "no-id", "no-guid", "bad-time", "naive-time"],
)
def test_items_without_what_a_redelivery_needs_are_skipped(item: object) -> None:
    assert HookDelivery.parse(item) is None


def test_a_github_item_parses() -> None:
    parsed = HookDelivery.parse(
        {
            "id": 12_000_000_001,
            "guid": "0b989ba4-242f-11e5-81e1-c7b6966d2516",
            "delivered_at": "2026-12-04T10:00:00Z",
            "redelivery": False,
            "status": "Invalid HTTP Response: 503",
            "status_code": 503,
            "event": "issues",
            "action": "labeled",
        }
    )
    assert parsed is not None and not parsed.succeeded
    assert parsed.delivered_at == datetime(2026, 12, 4, 10, tzinfo=UTC)


def test_lookback() -> None:
    window = timedelta(hours=6)
    assert lookback_since(NOW, None, window) == NOW - window
    assert lookback_since(NOW, NOW - timedelta(minutes=5), window) == NOW - timedelta(
        minutes=20
    )
    assert lookback_since(NOW, NOW - timedelta(days=2), window) == NOW - window


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("24h", 86400), ("90m", 5400), ("3d", 259200), ("45s", 45), ("600", 600)],
)
def test_durations(text: str, seconds: float) -> None:
    assert _duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0h", "soon", "-1h", "1w", "1.5h"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        _duration(text)
