"""orjson on the hot paths accepts and writes what the `json` module did."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from datetime import UTC, datetime

import pytest

from bridge.jsoncodec import dumps, loads
from bridge.triggers import IssueSnapshot, Trigger, from_snapshot, to_snapshot
from bridge.webhooks import parse_payload


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a": 1, "b": [true, null, "\\u00e9"], "c": {"d": 1.5}}',
        b'{"a": NaN, "b": Infinity}',  # json's extensions, refused by orjson
        b'{"lone": "\\ud800"}',  # a lone surrogate escape
        b'{"a": 1, "a": 2}',
    ],
    ids=["plain", "nan", "lone surrogate", "repeated key"],
)
def test_loads_reads_what_json_reads(raw: bytes) -> None:
    got, want = loads(raw), json.loads(raw.decode())
    assert json.dumps(got, sort_keys=True) == json.dumps(want, sort_keys=True) or (
        math.isnan(got["a"]) and math.isnan(want["a"])
    )


@pytest.mark.parametrize("raw", [b"{", b"[1,]", b'{"a": 1} x', b""])
def test_loads_refuses_what_json_refuses(raw: bytes) -> None:
    with pytest.raises(ValueError):
        loads(raw)


def test_a_number_beyond_64_bits_is_no_issue_number_either_way() -> None:
    # orjson reads such a number as a float, json as an int; the bridge keeps
    # ids and numbers only when they are ints that fit their columns, so the
    # decision is the same.
    from bridge.triggers import Rules, decide
    from tests import payloads

    raw = json.dumps(payloads.issues_labeled("twill", number=2**70)).encode()
    rules = Rules(labels={"twill": "SWE"})
    mine = decide("issues", loads(raw), rules)
    theirs = decide("issues", json.loads(raw), rules)
    assert (mine.outcome, mine.reason) == (theirs.outcome, theirs.reason)
    assert mine.outcome == "ignore"


def test_bytes_that_are_not_utf8_are_a_decode_error() -> None:
    with pytest.raises(UnicodeDecodeError):
        loads(b'{"a": "\xff"}')


def test_a_body_with_nul_escapes_is_cleaned_for_postgresql() -> None:
    payload = parse_payload(b'{"title": "a\\u0000b"}', "application/json")
    assert payload == {"title": "a\ufffdb"}


def test_dumps_writes_json_that_reads_back() -> None:
    value = {"command": "é ✓ \n", "files": [], "n": 2**70, "x": 1.25, "t": (1, 2)}
    assert json.loads(dumps(value)) == {**value, "t": [1, 2]}
    # orjson refuses keys that are not strings; json writes them as strings.
    assert json.loads(dumps({1: "a"})) == {"1": "a"}
    with pytest.raises(TypeError):
        dumps({"at": datetime.now(UTC)})  # as json.dumps: not JSON


def test_snapshot_is_what_asdict_gives_and_reads_back() -> None:
    issue = IssueSnapshot(
        repository="o/r",
        repository_id=7,
        number=3,
        title="t",
        url="https://github.com/o/r/issues/3",
        author="a",
        author_association="MEMBER",
        labels=("bug", "twill"),
        body="b",
    )
    trigger = Trigger(
        kind="comment", key="k", intent="PLAN", requester="m", agent="x/y"
    )
    snapshot = to_snapshot(issue, trigger)
    assert snapshot == {"issue": asdict(issue), "trigger": asdict(trigger)}
    assert from_snapshot(json.loads(dumps(snapshot))) == (issue, trigger)
