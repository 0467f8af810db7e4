"""The dashboard's pure parts: filters, cursors, the chart, links, its settings."""

from __future__ import annotations

import os
import stat
from datetime import UTC, date, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from bridge.admin import queries
from bridge.admin.auth import Sessions, csrf_ok, new_session
from bridge.admin.chart import stacked_bars
from bridge.admin.web import safe_href
from bridge.settings import SettingsError, ensure_session_secret, load_settings


def load(**env: str):  # type: ignore[no-untyped-def]
    return load_settings(env, env_file=None)


def test_a_cursor_names_its_row_exactly() -> None:
    moment = datetime(2026, 12, 3, 10, 0, 0, 123456, tzinfo=UTC)
    assert queries.decode_cursor(queries.encode_cursor(moment, 42)) == (moment, 42)


@pytest.mark.parametrize(
    "cursor", ["", "not-base64!", "MjAyNnwx", "bm90IGEgZGF0ZXwx"], ids=str
)
def test_a_foreign_cursor_is_a_bad_query(cursor: str) -> None:
    with pytest.raises(queries.BadQuery):
        queries.decode_cursor(cursor)


def test_filters_are_parsed_and_kept_for_links() -> None:
    where = queries.parse_filter(
        {"status": "failed", "intent": "PLAN", "since": "2026-12-01", "search": " #7 "}
    )
    assert where.status == "failed" and where.since == date(2026, 12, 1)
    assert where.as_params() == {
        "status": "failed",
        "intent": "PLAN",
        "since": "2026-12-01",
        "search": "#7",
    }


@pytest.mark.parametrize(
    "params",
    [
        {"status": "lost"},
        {"intent": "swe"},
        {"trigger_kind": "mention"},
        {"since": "yesterday"},
        {"until": "2026-13-01"},
    ],
    ids=lambda p: next(iter(p)),
)
def test_a_filter_out_of_range_is_a_bad_query(params: dict[str, str]) -> None:
    with pytest.raises(queries.BadQuery):
        queries.parse_filter(params)


@pytest.mark.parametrize("limit", ["0", "201", "ten", "-1"])
def test_page_size_is_bounded(limit: str) -> None:
    with pytest.raises(queries.BadQuery):
        queries.page_size({"limit": limit})


def test_the_chart_escapes_series_names_and_scales_to_the_peak() -> None:
    days = [date(2026, 12, 1), date(2026, 12, 2)]
    svg = str(stacked_bars(days, {"SWE": [1, 4], "<b>": [1, 0]}))
    assert svg.startswith("<svg") and "<b>" not in svg and "&lt;b&gt;" in svg
    assert svg.count("<rect") == 3 + 2  # three bars, two legend swatches
    assert ">4</text>" in svg


@pytest.mark.parametrize(
    ("url", "kept"),
    [
        ("https://github.com/o/r/issues/1", True),
        ("http://ghe.example/o/r/issues/1", True),
        ("javascript:alert(1)", False),
        ("data:text/html,hi", False),
        ("", False),
        (None, False),
    ],
)
def test_only_http_links_are_rendered(url: str | None, kept: bool) -> None:
    assert (safe_href(url) is not None) == kept


def test_a_session_cookie_is_refused_when_forged() -> None:
    mine, theirs = Sessions("a" * 40), Sessions("b" * 40)
    cookie = theirs.encode(new_session(login="mallory"))

    request = SimpleNamespace(cookies={"twill_bridge_session": cookie})
    assert mine.read(request) == {}  # type: ignore[arg-type]
    assert theirs.read(request)["login"] == "mallory"  # type: ignore[arg-type]


def test_csrf_must_match_the_session() -> None:
    session = new_session()
    assert csrf_ok(session, session["csrf"])
    assert not csrf_ok(session, session["csrf"] + "x")
    assert not csrf_ok(session, None)
    assert not csrf_ok({}, "")


def test_admin_settings_are_read_and_masked() -> None:
    settings = load(
        GITHUB_CLIENT_ID="Iv1.abc",
        GITHUB_CLIENT_SECRET="client-secret-value",
        BRIDGE_ADMIN_LOGINS=" Alice , bob ",
        BRIDGE_ADMIN_TOKEN="api-token-value",
    )
    assert settings.oauth_enabled
    assert settings.admin_logins == frozenset({"alice", "bob"})
    assert "secret-value" not in repr(settings)
    assert "token-value" not in repr(settings)


@pytest.mark.parametrize(
    "env",
    [
        {"GITHUB_CLIENT_ID": "Iv1.abc"},
        {"GITHUB_CLIENT_SECRET": "shh"},
        {"BRIDGE_SESSION_SECRET": "too short"},
    ],
    ids=lambda e: next(iter(e)),
)
def test_half_set_admin_settings_are_problems(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError):
        load(**env)


def test_missing_session_secret_is_generated_once_and_kept_private(
    tmp_path: Path,
) -> None:
    settings = load(BRIDGE_DATA_DIR=str(tmp_path))
    first, again = ensure_session_secret(settings), ensure_session_secret(settings)
    path = tmp_path / "session-secret"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert first.session_secret == again.session_secret
    assert first.session_secret is not None
