"""The admin dashboard and its JSON API, through the real app and signed deliveries."""

from __future__ import annotations

import base64
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from bridge.settings import Secret
from tests import payloads
from tests.conftest import TWILL_KEY, WEBHOOK_SECRET, Harness
from tests.fakes.twill import Fault

PASSWORD = "correct horse battery staple"
TOKEN = "admin-api-token-for-tests"
SESSION_KEY = "s" * 40


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "the page has no CSRF field"
    return found.group(1)


async def sign_in(h: Harness, password: str = PASSWORD) -> httpx.Response:
    form = await h.client.get("/admin/login")
    return await h.client.post(
        "/admin/login", data={"csrf": csrf_of(form.text), "password": password}
    )


@pytest.fixture
async def admin(make_harness: Any) -> Harness:
    """A harness with password sign-in, an API token and a session key."""
    h: Harness = await make_harness(
        admin_password=Secret(PASSWORD),
        admin_token=Secret(TOKEN),
        session_secret=Secret(SESSION_KEY),
    )
    return h


async def failed_dispatch(h: Harness, number: int = 12) -> int:
    h.twill.fail(Fault(status=400))
    answer = await h.deliver("issues", payloads.issues_labeled(number=number))
    await h.drain()
    return int(answer.json()["dispatch"])


async def test_without_a_session_pages_redirect_and_the_api_refuses(
    admin: Harness,
) -> None:
    dispatch_id = await failed_dispatch(admin)
    for path in ("/admin", "/admin/dispatches", f"/admin/dispatches/{dispatch_id}"):
        answer = await admin.client.get(path)
        assert answer.status_code == 303, path
        assert answer.headers["location"] == "/admin/login"
    for path in (
        "/api/dispatches",
        f"/api/dispatches/{dispatch_id}",
        "/api/deliveries",
    ):
        assert (await admin.client.get(path)).status_code == 401, path
    retried = await admin.client.post(f"/admin/dispatches/{dispatch_id}/retry")
    assert retried.status_code == 303
    assert (await admin.dispatches())[0].status == "failed"


async def test_a_wrong_password_is_refused_and_a_right_one_signs_in(
    admin: Harness,
) -> None:
    assert (await sign_in(admin, "wrong")).status_code == 401
    assert (await admin.client.get("/admin")).status_code == 303
    signed = await sign_in(admin)
    assert signed.status_code == 303
    cookie = signed.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    assert (await admin.client.get("/admin")).status_code == 200


async def test_the_password_form_needs_its_csrf_token(admin: Harness) -> None:
    await admin.client.get("/admin/login")
    answer = await admin.client.post(
        "/admin/login", data={"csrf": "forged", "password": PASSWORD}
    )
    assert answer.status_code == 403


async def test_retry_checks_csrf_then_queues_and_records_who(admin: Harness) -> None:
    dispatch_id = await failed_dispatch(admin)
    await sign_in(admin)
    page = await admin.client.get(f"/admin/dispatches/{dispatch_id}")
    assert 'id="retry"' in page.text

    forged = await admin.client.post(
        f"/admin/dispatches/{dispatch_id}/retry", data={"csrf": "nope"}
    )
    assert forged.status_code == 403
    assert (await admin.dispatches())[0].status == "failed"

    done = await admin.client.post(
        f"/admin/dispatches/{dispatch_id}/retry", data={"csrf": csrf_of(page.text)}
    )
    assert done.status_code == 303
    assert done.headers["location"].endswith("?notice=retried")
    assert (await admin.dispatches())[0].status == "queued"
    last = (await admin.events(dispatch_id))[-1]
    assert (last.status, last.actor) == ("queued", "admin (password)")
    await admin.drain()
    assert (await admin.dispatches())[0].status == "reported"


async def test_dismiss_closes_a_failed_dispatch_and_refuses_a_reported_one(
    admin: Harness,
) -> None:
    failed = await failed_dispatch(admin, number=1)
    reported = (
        await admin.deliver("issues", payloads.issues_labeled(number=2))
    ).json()["dispatch"]
    await admin.drain()
    await sign_in(admin)
    csrf = csrf_of((await admin.client.get("/admin/dispatches")).text)

    done = await admin.client.post(
        f"/admin/dispatches/{failed}/dismiss", data={"csrf": csrf}
    )
    assert done.headers["location"].endswith("?notice=dismissed")
    refused = await admin.client.post(
        f"/admin/dispatches/{reported}/dismiss", data={"csrf": csrf}
    )
    assert refused.headers["location"].endswith("?notice=refused")
    statuses = {d.id: d.status for d in await admin.dispatches()}
    assert statuses == {failed: "dismissed", reported: "reported"}
    assert (await admin.events(failed))[-1].actor == "admin (password)"


async def test_sign_out_ends_the_session(admin: Harness) -> None:
    await sign_in(admin)
    page = await admin.client.get("/admin")
    out = await admin.client.post("/admin/logout", data={"csrf": csrf_of(page.text)})
    assert out.status_code == 303
    assert (await admin.client.get("/admin")).status_code == 303


async def test_api_filters_and_pages_by_cursor(admin: Harness) -> None:
    for number in range(1, 8):
        label = "twill-plan" if number % 2 else "twill"
        await admin.deliver(
            "issues",
            payloads.issues_labeled(
                label, number=number, title=f"Issue number {number}"
            ),
        )
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    seen: list[int] = []
    cursor: str | None = None
    while True:
        params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        answer = await admin.client.get(
            "/api/dispatches", params=params, headers=bearer
        )
        assert answer.status_code == 200
        body = answer.json()
        seen += [d["issue_number"] for d in body["dispatches"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == [7, 6, 5, 4, 3, 2, 1]

    plans = await admin.client.get(
        "/api/dispatches", params={"intent": "PLAN"}, headers=bearer
    )
    assert [d["issue_number"] for d in plans.json()["dispatches"]] == [7, 5, 3, 1]
    found = await admin.client.get(
        "/api/dispatches", params={"search": "#4"}, headers=bearer
    )
    assert [d["issue_number"] for d in found.json()["dispatches"]] == [4]
    bad = await admin.client.get(
        "/api/dispatches", params={"status": "nonsense"}, headers=bearer
    )
    assert bad.status_code == 400
    wrong = await admin.client.get(
        "/api/dispatches", headers={"Authorization": "Bearer wrong"}
    )
    assert wrong.status_code == 401


async def test_api_detail_has_the_request_timeline_and_deliveries(
    admin: Harness,
) -> None:
    delivery = "d-4711"
    answer = await admin.deliver(
        "issues", payloads.issues_labeled(), delivery_id=delivery
    )
    await admin.deliver("issues", payloads.issues_labeled(), delivery_id="d-4712")
    await admin.drain()
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    detail = (
        await admin.client.get(
            f"/api/dispatches/{answer.json()['dispatch']}", headers=bearer
        )
    ).json()
    assert detail["status"] == "reported"
    assert detail["request"]["command"] == detail["command"]
    assert detail["twill_response"] is not None
    statuses = [e["status"] for e in detail["events"]]
    assert statuses[0] == "queued" and "sending" in statuses
    assert statuses[-1] == "reported"
    assert {x["delivery_id"] for x in detail["deliveries"]} == {"d-4711", "d-4712"}
    assert detail["comment_url"].endswith(f"#issuecomment-{detail['comment_id']}")


async def test_refused_signatures_are_counted_in_the_database(admin: Harness) -> None:
    for _ in range(3):
        await admin.deliver("issues", payloads.issues_labeled(), secret="wrong")
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    body = (await admin.client.get("/api/deliveries", headers=bearer)).json()
    assert body["refused_signatures"] == {"total": 3, "last_24_hours": 3}
    assert body["deliveries"] == []


async def test_no_secret_on_any_page_or_answer(admin: Harness) -> None:
    dispatch_id = await failed_dispatch(admin)
    await admin.deliver("issues", payloads.issues_labeled(number=3))
    await admin.drain()
    await sign_in(admin)
    secrets = [PASSWORD, TOKEN, SESSION_KEY, WEBHOOK_SECRET, TWILL_KEY]
    secrets += [
        line
        for line in admin.settings.github_private_key.reveal().splitlines()  # type: ignore[union-attr]
        if len(line) > 20
    ]
    paths = [
        "/admin",
        "/admin/dispatches",
        f"/admin/dispatches/{dispatch_id}",
        "/admin/deliveries",
        "/api/dispatches",
        f"/api/dispatches/{dispatch_id}",
        "/api/deliveries",
        "/admin/login",
    ]
    for path in paths:
        text = (await admin.client.get(path)).text
        assert not [s for s in secrets if s in text], path


async def test_pages_render_with_no_external_asset(admin: Harness) -> None:
    dispatch_id = await failed_dispatch(admin)
    await sign_in(admin)
    for path in ("/admin", "/admin/dispatches", f"/admin/dispatches/{dispatch_id}"):
        answer = await admin.client.get(path)
        assert answer.status_code == 200
        assert "default-src 'none'" in answer.headers["content-security-policy"]
        assert not re.search(r"<(script|link|img)\b", answer.text), path
    overview = await admin.client.get("/admin")
    assert "<svg" in overview.text and "SWE" in overview.text


@pytest.fixture
async def oauth(make_harness: Any, fake_github: Any) -> Harness:
    """A harness whose dashboard signs in through the fake GitHub's OAuth flow."""
    h: Harness = await make_harness(
        github_client_id=fake_github.client_id,
        github_client_secret=Secret(fake_github.client_secret),
        github_web_url="http://github.test",
        admin_logins=frozenset({"maintainer"}),
    )
    return h


async def through_github(h: Harness) -> httpx.Response:
    """Start sign-in, let the fake GitHub approve, and come back to the callback."""
    start = await h.client.get("/admin/oauth/start")
    assert start.status_code == 303
    async with httpx.AsyncClient(transport=h.github_transport) as browser:
        approved = await browser.get(start.headers["location"])
    back = urlsplit(approved.headers["location"])
    return await h.client.get(f"{back.path}?{back.query}")


async def test_github_sign_in_for_an_allowed_login(oauth: Harness) -> None:
    answer = await through_github(oauth)
    assert answer.status_code == 303 and answer.headers["location"] == "/admin"
    page = await oauth.client.get("/admin")
    assert page.status_code == 200
    assert 'id="signed-in-as">maintainer<' in page.text
    assert ("GET", "/user") in oauth.github.calls


async def test_github_sign_in_refuses_other_logins(oauth: Harness) -> None:
    oauth.github.signing_in_as = "stranger"
    answer = await through_github(oauth)
    assert answer.status_code == 403
    assert "stranger is not allowed" in answer.text
    assert (await oauth.client.get("/admin")).status_code == 303


async def test_github_sign_in_checks_state(oauth: Harness) -> None:
    start = await oauth.client.get("/admin/oauth/start")
    state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]
    answer = await oauth.client.get(
        "/admin/oauth/callback", params={"code": "x", "state": state + "forged"}
    )
    assert answer.status_code == 400
    assert (await oauth.client.get("/admin")).status_code == 303


async def test_github_sign_in_behind_a_proxy_names_the_public_url(
    make_harness: Any, fake_github: Any
) -> None:
    # The browser uses https://bridge.example.com; the app sees the proxy's
    # plain http request (its Host and X-Forwarded-Proto are not trusted).
    fake_github.oauth_callback = "https://bridge.example.com/admin/oauth/callback"
    h: Harness = await make_harness(
        public_url="https://bridge.example.com",
        github_client_id=fake_github.client_id,
        github_client_secret=Secret(fake_github.client_secret),
        github_web_url="http://github.test",
        admin_logins=frozenset({"maintainer"}),
    )
    start = await h.client.get("/admin/oauth/start")
    sent = parse_qs(urlsplit(start.headers["location"]).query)["redirect_uri"]
    assert sent == ["https://bridge.example.com/admin/oauth/callback"]
    assert "secure" in start.headers["set-cookie"].lower()

    answer = await through_github(h)
    assert answer.status_code == 303 and answer.headers["location"] == "/admin"
    assert "secure" in answer.headers["set-cookie"].lower()
    assert (await h.client.get("/admin")).status_code == 200
    signed_out = await h.client.post(
        "/admin/logout", data={"csrf": csrf_of((await h.client.get("/admin")).text)}
    )
    assert "secure" in signed_out.headers["set-cookie"].lower()


async def test_counts_stop_at_the_cap_and_say_so(
    admin: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bridge.admin import queries

    monkeypatch.setattr(queries, "COUNT_CAP", 2)
    for number in range(1, 5):
        await admin.deliver("issues", payloads.issues_labeled(number=number))
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    body = (await admin.client.get("/api/dispatches", headers=bearer)).json()
    assert body["counts"]["queued"] == 3 and body["counts_capped_at"] == 2
    assert len(body["dispatches"]) == 4
    await sign_in(admin)
    page = await admin.client.get("/admin/dispatches")
    assert "queued <b>2+</b>" in page.text


async def test_a_title_search_lists_without_counts(admin: Harness) -> None:
    await admin.deliver("issues", payloads.issues_labeled(title="Fix the frobnicator"))
    await admin.deliver("issues", payloads.issues_labeled(number=13))
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    body = (
        await admin.client.get(
            "/api/dispatches", params={"search": "FROBNIC"}, headers=bearer
        )
    ).json()
    assert [d["issue_title"] for d in body["dispatches"]] == ["Fix the frobnicator"]
    assert body["counts"] is None


COOKIE = "twill_bridge_session"


async def test_signing_out_ends_every_copy_of_the_session(admin: Harness) -> None:
    await sign_in(admin)
    copied = admin.client.cookies[COOKIE]
    assert (await admin.client.get("/admin")).status_code == 200
    page = await admin.client.get("/admin/dispatches")
    await admin.client.post("/admin/logout", data={"csrf": csrf_of(page.text)})
    thief = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=admin.app),
        base_url="http://bridge.test",
        cookies={COOKIE: copied},
    )
    assert (await thief.get("/admin")).status_code == 303
    assert (await thief.get("/api/dispatches")).status_code == 401
    await thief.aclose()


@pytest.mark.parametrize(
    "later",
    [
        {"admin_password": Secret("a new password, rotated")},
        {
            "github_client_id": "Iv1.fakeclientid",
            "github_client_secret": Secret("fake-oauth-client-secret"),
            "admin_logins": frozenset({"maintainer"}),
        },
    ],
    ids=["password-changed", "switched-to-oauth"],
)
async def test_a_session_ends_when_its_sign_in_would_no_longer_work(
    admin: Harness, make_harness: Any, later: dict[str, Any]
) -> None:
    await sign_in(admin)
    copied = admin.client.cookies[COOKIE]
    base = {
        "admin_password": Secret(PASSWORD),
        "admin_token": Secret(TOKEN),
        "session_secret": Secret(SESSION_KEY),
    }
    restarted: Harness = await make_harness(**{**base, **later})
    restarted.client.cookies[COOKIE] = copied
    assert (await restarted.client.get("/admin")).status_code == 303


async def test_a_login_dropped_from_the_allow_list_is_out_at_once(
    make_harness: Any,
) -> None:
    from bridge.admin.auth import Sessions, new_session

    oauth = {
        "github_client_id": "Iv1.fakeclientid",
        "github_client_secret": Secret("fake-oauth-client-secret"),
        "session_secret": Secret(SESSION_KEY),
    }
    cookie = Sessions(SESSION_KEY).encode(new_session(login="maintainer", via="github"))
    allowed: Harness = await make_harness(
        admin_logins=frozenset({"maintainer"}), **oauth
    )
    allowed.client.cookies[COOKIE] = cookie
    assert (await allowed.client.get("/admin")).status_code == 200
    dropped: Harness = await make_harness(
        admin_logins=frozenset({"someone-else"}), **oauth
    )
    dropped.client.cookies[COOKIE] = cookie
    assert (await dropped.client.get("/admin")).status_code == 303


async def test_the_detail_shows_what_following_the_task_found(admin: Harness) -> None:
    await admin.deliver("issues", payloads.issues_labeled("twill"))
    await admin.drain()
    admin.twill.advance(
        "tsk_1",
        "IN_PROGRESS",
        prs=[
            {
                "repoFullName": "octo-org/widgets",
                "prNumber": 31,
                "prUrl": "https://github.com/octo-org/widgets/pull/31",
                "title": "Guard <script> input",
                "state": "open",
            }
        ],
    )
    await admin.deliver(
        "issue_comment", payloads.comment_created("/twill also the CLI", comment_id=77)
    )
    await admin.drain()
    await sign_in(admin)
    task = (await admin.client.get("/admin/dispatches/1")).text
    assert 'id="dispatch-follow">active' in task
    assert "follow-up</th><td>by maintainer" in task
    assert 'href="/admin/dispatches/2"' in task
    follow_up = (await admin.client.get("/admin/dispatches/2")).text
    assert "follow-up message for" in follow_up
    assert 'href="/admin/dispatches/1"' in follow_up


async def test_an_id_beyond_any_row_is_a_404_not_a_500(admin: Harness) -> None:
    huge = 99999999999999999999
    answer = await admin.client.get(
        f"/api/dispatches/{huge}", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert answer.status_code == 404
    await sign_in(admin)
    assert (await admin.client.get(f"/admin/dispatches/{huge}")).status_code == 404
    page = await admin.client.get("/admin/dispatches")
    retried = await admin.client.post(
        f"/admin/dispatches/{huge}/retry", data={"csrf": csrf_of(page.text)}
    )
    assert retried.status_code == 303


def _cursor(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/dispatches", {"until": "9999-12-31"}),
        ("/admin/dispatches", {"until": "9999-12-31"}),
        ("/api/dispatches", {"limit": "1²"}),
        ("/api/deliveries", {"limit": "٣"}),
        ("/api/dispatches", {"limit": "9" * 5000}),
        ("/api/dispatches", {"repository": "\x00"}),
        ("/api/dispatches", {"search": "\x00"}),
        ("/api/dispatches", {"requester": "a\x00b"}),
        ("/admin/dispatches", {"search": "fix\x00"}),
        ("/api/deliveries", {"event": "\x00"}),
        ("/api/deliveries", {"repository": "o/r\x00"}),
        ("/admin/deliveries", {"event": "\x00"}),
        ("/api/dispatches", {"cursor": _cursor("0001-01-01T00:00:00+05:00|1")}),
        (
            "/api/deliveries",
            {"cursor": _cursor("2026-01-01T00:00:00+00:00|" + "9" * 30)},
        ),
    ],
    ids=[
        "api-until-max",
        "page-until-max",
        "limit-superscript",
        "limit-arabic-digit",
        "limit-5000-digits",
        "repository-nul",
        "search-nul",
        "requester-nul",
        "page-search-nul",
        "event-nul",
        "delivery-repository-nul",
        "page-event-nul",
        "cursor-before-year-1",
        "cursor-id-too-big",
    ],
)
async def test_filters_the_database_cannot_take_are_400_not_500(
    admin: Harness, path: str, params: dict[str, str]
) -> None:
    await admin.deliver("issues", payloads.issues_labeled())
    await sign_in(admin)
    answer = await admin.client.get(path, params=params)
    assert answer.status_code == 400, answer.text
    if path.startswith("/api/"):
        assert answer.json()["error"]["code"] == "bad_query"
    # The same filters that are fine still answer.
    assert (
        await admin.client.get(path, params={"until": "9999-12-30"})
    ).status_code == 200
