"""`/setup`: register the bridge's GitHub App from a manifest, once.

Until an App is configured, whoever reaches /setup could bind the bridge to
an App of their own; so the visitor first proves to be the operator with the
setup token (random, written to BRIDGE_DATA_DIR/setup-token at start-up, the
log says where, never what; the database holds only its digest, which every
replica checks against: bridge/credentials.py). That earns a signed cookie,
scoped to /setup, for an hour (GitHub's code lasts as long), naming the
token's row: it proves nothing once the row is gone. The manifest form carries a fresh `state` that the cookie
remembers; GitHub's redirect back must bring the same one, so a code from
someone else's flow is refused. Once an App is configured (a `github_app`
row, or GITHUB_APP_ID in the settings) every page here answers 410.
"""

from __future__ import annotations

import hmac
import json
import secrets
from typing import Any
from urllib.parse import urlsplit

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from bridge import log
from bridge.admin.web import admin_of, over_https, read_form, redirect, render
from bridge.credentials import (
    SETUP_FILE,
    AlreadyConfigured,
    AppCredentials,
    CredentialsError,
    registered,
    save,
    setup_row_exists,
    setup_token_row,
    storage_of,
    writable_problem,
)
from bridge.github import (
    GitHubError,
    GitHubNotFound,
    GitHubRefused,
    convert_manifest,
)
from bridge.manifest import (
    ManifestProblem,
    clean_name,
    clean_org,
    manifest,
    new_app_url,
)
from bridge.settings import Settings

COOKIE = "twill_bridge_setup"
# GitHub's manifest code lasts an hour; so does the proof of the token.
COOKIE_SECONDS = 3600


def _serializer(request: Request) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(
        admin_of(request).sessions.secret, salt="twill-bridge setup"
    )


async def _proof(request: Request) -> dict[str, Any] | None:
    """The setup cookie's contents, while the token it proved is still accepted."""
    raw = request.cookies.get(COOKIE)
    if not raw:
        return None
    try:
        data = _serializer(request).loads(raw, max_age=COOKIE_SECONDS)
    except BadSignature:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("row"), str):
        return None
    if not await setup_row_exists(request.app.state.sessions, data["row"]):
        return None
    return data


def _remember(request: Request, response: Response, data: dict[str, Any]) -> None:
    response.set_cookie(
        COOKIE,
        _serializer(request).dumps(data),
        max_age=COOKIE_SECONDS,
        path="/setup",
        httponly=True,
        # Lax: GitHub's redirect back is a top-level GET, which carries it.
        samesite="lax",
        secure=over_https(request),
    )


async def _closed(request: Request) -> Response | None:
    """The 410 page once an App is configured, on every replica; else None."""
    settings: Settings = request.app.state.settings
    if (
        settings.github_app_id is None
        and await registered(request.app.state.sessions) is None
    ):
        return None
    return _page(
        request,
        "closed",
        410,
        message="This bridge's GitHub App is configured, so setup is closed. "
        "To register another App, remove the current one's settings and its "
        "record first.",
    )


def _page(
    request: Request, step: str, status: int = 200, **context: Any
) -> HTMLResponse:
    return render(request, "setup.html", {"step": step, **context}, status)


def _default_name(settings: Settings) -> str:
    host = urlsplit(settings.public_url or "").hostname or ""
    label = host.split(".", 1)[0] if host and not host[0].isdigit() else ""
    return f"Twill bridge {label}".strip()[:34]


async def setup_page(request: Request) -> Response:
    """Ask for the token, or (with its proof) where to register the App."""
    if (closed := await _closed(request)) is not None:
        return closed
    if await _proof(request) is None:
        return _page(
            request, "token", 200, data_dir=str(request.app.state.settings.data_dir)
        )
    return _choose(request, None)


def _choose(request: Request, error: str | None, status: int = 200) -> HTMLResponse:
    settings: Settings = request.app.state.settings
    problems = []
    if settings.public_url is None:
        problems.append(
            "BRIDGE_PUBLIC_URL is not set: GitHub needs it to reach the bridge's "
            "webhook. Set it to the bridge's address (https://...) and restart."
        )
    if (problem := writable_problem(settings)) is not None:
        problems.append(f"The credentials could not be kept: {problem}.")
    return _page(
        request,
        "choose",
        status,
        error=error,
        problems=problems,
        default_name=_default_name(settings),
        web_url=settings.github_web_url,
    )


async def setup_token_form(request: Request) -> Response:
    """Check the token; the right one earns the setup cookie."""
    if (closed := await _closed(request)) is not None:
        return closed
    form = await read_form(request)
    sent = form.get("token", "").strip()
    row = await setup_token_row(request.app.state.sessions, sent) if sent else None
    if row is None:
        log.warning("setup token refused")
        return _page(
            request,
            "token",
            403,
            error="That is not the setup token.",
            data_dir=str(request.app.state.settings.data_dir),
        )
    response = redirect("/setup")
    _remember(request, response, {"row": row})
    return response


async def manifest_page(request: Request) -> Response:
    """The form that takes the manifest to GitHub, with a fresh `state`."""
    if (closed := await _closed(request)) is not None:
        return closed
    proof = await _proof(request)
    if proof is None:
        return redirect("/setup")
    settings: Settings = request.app.state.settings
    if settings.public_url is None or writable_problem(settings) is not None:
        return _choose(request, None, 409)
    try:
        name = clean_name(request.query_params.get("name"))
        org = clean_org(request.query_params.get("org"))
    except ManifestProblem as problem:
        return _choose(request, f"{problem}.", 400)
    state = secrets.token_urlsafe(24)
    response = _page(
        request,
        "manifest",
        manifest_json=json.dumps(manifest(settings.public_url, name)),
        action=new_app_url(settings.github_web_url, org, state),
        account=org or "your personal account",
        name=name,
    )
    _remember(request, response, {**proof, "state": state})
    return response


async def callback(request: Request) -> Response:
    """GitHub sent the browser back with a code: exchange it, keep the App."""
    if (closed := await _closed(request)) is not None:
        return closed
    proof = await _proof(request)
    if proof is None and (closed := await _closed(request)) is not None:
        # Another setup finished since the check above and took the token's row.
        return closed
    expected = proof.get("state") if proof else None
    state, code = request.query_params.get("state"), request.query_params.get("code")
    if (
        not isinstance(expected, str)
        or not state
        or not hmac.compare_digest(state.encode(), expected.encode())
    ):
        log.warning("setup callback refused", reason="state does not match")
        return _page(
            request,
            "failed",
            403,
            message="This answer from GitHub does not belong to the setup started "
            "in this browser (or it expired). Start again from /setup.",
        )
    if (
        not code
        or len(code) > 100
        or not code.replace("-", "").replace("_", "").isalnum()
    ):
        return _page(request, "failed", 400, message="GitHub's answer carried no code.")
    settings: Settings = request.app.state.settings
    try:
        body = await convert_manifest(
            settings.github_api_url, code, request.app.state.peers.github_transport
        )
        credentials = AppCredentials.from_conversion(body)
    except (GitHubNotFound, GitHubRefused) as error:
        log.warning("manifest code refused", status=error.status)
        return _page(
            request,
            "failed",
            400,
            message="GitHub did not accept the code: it works once and for an hour. "
            "Start again from /setup.",
        )
    except (GitHubError, CredentialsError) as error:
        log.warning("manifest conversion failed", error=type(error).__name__)
        return _page(
            request,
            "failed",
            502,
            message=f"GitHub could not be asked for the App ({error}). Reload this "
            "page to try again within the hour.",
        )
    return await _keep(request, settings, credentials)


async def _keep(
    request: Request, settings: Settings, credentials: AppCredentials
) -> Response:
    try:
        storage = await save(request.app.state.sessions, settings, credentials)
    except AlreadyConfigured:
        return _page(
            request,
            "failed",
            409,
            message=f"Another setup finished first, so the App just made "
            f"({credentials.slug}) is not used; delete it in its settings on GitHub.",
            app_url=credentials.html_url,
        )
    except OSError as error:
        log.error("could not keep the github app credentials", error=error.strerror)
        return _page(
            request,
            "failed",
            503,
            message=f"GitHub made the App {credentials.slug}, but the bridge could not "
            f"write {settings.credentials_file} ({error.strerror}). In the App's "
            "settings on GitHub, generate a new private key and reset the webhook "
            "secret, and set them as GITHUB_APP_* settings, or delete the App and "
            "start again.",
            app_url=credentials.html_url,
        )
    log.info(
        "github app registered",
        app_id=credentials.app_id,
        slug=credentials.slug,
        storage=storage,
    )
    updated = await request.app.state.apply_credentials(credentials)
    (settings.data_dir / SETUP_FILE).unlink(missing_ok=True)
    notes = []
    if (
        updated.webhook_secrets
        and credentials.webhook_secret not in updated.webhook_secrets
    ):
        notes.append(
            "GITHUB_WEBHOOK_SECRET is set in the environment and wins over the secret "
            "GitHub generated: set the App's webhook secret on GitHub to it, or unset it."
        )
    if updated.github_app_id != credentials.app_id:
        notes.append(
            "GITHUB_APP_ID is set in the environment and wins over the new App: "
            "unset it (and the private key settings) to use the new App."
        )
    if storage_of(settings) == "file":
        notes.append(
            f"The credentials are in {settings.credentials_file} (owner-only). Other "
            "replicas read them only if they share that file; set BRIDGE_SECRETS_KEY "
            "to keep them in the database instead."
        )
    response = _page(
        request,
        "done",
        slug=credentials.slug,
        app_url=credentials.html_url,
        install_url=credentials.install_url,
        storage=storage,
        dry_run=updated.dry_run_reasons,
        notes=notes,
    )
    response.delete_cookie(COOKIE, path="/setup")
    return response
