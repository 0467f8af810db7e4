"""The doctor's lines: what a peer's text may not put on the terminal, and surprises."""

from __future__ import annotations

import pytest

from bridge.doctor import FAIL, _guarded, printable


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain text", "plain text"),
        ("red \x1b[31mALERT\x1b[0m", "red ALERT"),
        ("clear\x1b[2J\x1b[H screen", "clear screen"),
        ("title \x1b]0;owned\x07 set", "title set"),
        ("two\nlines\r\there", "two lines here"),
        ("bell\x07 nul\x00 del\x7f c1\x9b", "bell nul del c1"),
        ("bidi \u202eevil\u202c", "bidi evil"),
        ("ünïcode ✓ stays", "ünïcode ✓ stays"),
    ],
    ids=["plain", "sgr", "csi", "osc", "breaks", "controls", "bidi", "unicode"],
)
def test_printable_drops_escapes_and_control_characters(raw: str, shown: str) -> None:
    assert printable(raw) == shown


async def test_a_check_that_breaks_unexpectedly_is_its_own_fail_line() -> None:
    async def breaks() -> list:  # type: ignore[type-arg]
        raise KeyError("surprise")

    [check] = await _guarded("github app", breaks())
    assert (check.status, check.name) == (FAIL, "github app")
    assert check.reason == "stopped by KeyError"
