"""A fake GitHub REST API for one App, answering like GitHub and recording calls.

It checks what GitHub checks: the App JWT (RS256 over our public key, `iss`
the app id as a string, at most 10 minutes of life), installation tokens on
installation calls, the REST headers, and the shape of each request body.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.contracts.github_contract import check_request


@dataclass
class GitHubFault:
    """One scripted answer for the next call matching `method` and `path_part`."""

    method: str
    path_part: str
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    message: str = "scripted failure"
    apply_anyway: bool = False  # do the write, then answer `status` (a lost answer)
    delay: float = 0.0  # seconds to hang before answering (and before writing)


@dataclass
class FakeGitHub:
    """State of the fake: comments per issue, tokens issued, calls seen."""

    app_id: int
    public_key: str
    installations: dict[str, int] = field(default_factory=dict)  # "owner/repo" -> id
    comments: dict[int, dict[str, Any]] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    tokens: dict[str, int] = field(default_factory=dict)  # token -> installation
    token_requests: int = 0
    faults: deque[GitHubFault] = field(default_factory=deque)
    problems: list[str] = field(default_factory=list)
    write_times: list[float] = field(default_factory=list)
    bot_login: str = "twill-bridge[bot]"
    # login -> role_name; anyone else is not a collaborator (404, as GitHub says).
    roles: dict[str, str] = field(default_factory=lambda: {"maintainer": "admin"})
    files: dict[tuple[str, str], str] = field(
        default_factory=dict
    )  # (repo, path) -> text
    pulls: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    reactions: list[tuple[str, str]] = field(
        default_factory=list
    )  # (target path, content)
    # GitHub's HTML rendering, by (repo, issue number) or (repo, comment id).
    rendered: dict[tuple[str, int], str] = field(default_factory=dict)
    _ids: Any = field(default_factory=lambda: itertools.count(9000))
    _hook_ids: Any = field(default_factory=lambda: itertools.count(12_000_000_000))
    # The App's OAuth client, and who approves the sign-in at /login/oauth/authorize.
    client_id: str = "Iv1.fakeclientid"
    client_secret: str = "fake-oauth-client-secret"
    signing_in_as: str = "maintainer"
    # The App's registered callback URL; when set, a redirect_uri elsewhere is
    # refused as GitHub refuses it (same scheme, host and port; a path under it).
    oauth_callback: str | None = None
    oauth_codes: dict[str, tuple[str, str]] = field(default_factory=dict)
    user_tokens: dict[str, str] = field(default_factory=dict)  # token -> login
    # The App itself (GET /app), and where its webhook points (GET /app/hook/config).
    app_slug: str = "twill-bridge-test"
    app_owner: str = "octo-org"
    app_permissions: dict[str, str] = field(
        default_factory=lambda: {
            "issues": "write",
            "pull_requests": "write",
            "contents": "read",
            "metadata": "read",
        }
    )
    app_events: list[str] = field(
        default_factory=lambda: ["issues", "issue_comment", "pull_request"]
    )
    hook_url: str = "https://bridge.example.com/api/github/webhooks"
    # The App's delivery log: one dict per attempt, as GET /app/hook/deliveries
    # lists them; `hook_payloads` keeps what each guid carried, and
    # `hook_target` (when set) is where a redelivery is sent: an async
    # callable (guid, event, payload) -> HTTP status.
    hook_deliveries: list[dict[str, Any]] = field(default_factory=list)
    hook_payloads: dict[str, tuple[str, Any]] = field(default_factory=dict)
    hook_target: Any = None
    redelivery_requests: list[int] = field(default_factory=list)
    # The manifest flow: codes GitHub handed to the browser, and Apps made.
    manifest_codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    registered: list[dict[str, Any]] = field(default_factory=list)
    private_keys: dict[int, str] = field(default_factory=dict)  # app id -> PEM

    def fail(self, *faults: GitHubFault) -> None:
        """Play these faults on matching calls, in order."""
        self.faults.extend(faults)

    def plant_comment(self, repository: str, number: int, body: str, login: str) -> int:
        """A comment a person wrote on the issue (not through this App)."""
        cid = next(self._ids)
        self.comments[cid] = {
            "id": cid,
            "repository": repository,
            "issue": number,
            "body": body,
            "edits": 0,
            "user": {"login": login, "type": "User"},
        }
        return cid

    def issue_comments(self, repository: str, number: int) -> list[dict[str, Any]]:
        """The comments on one issue, oldest first."""
        return [
            c
            for c in self.comments.values()
            if c["repository"] == repository and c["issue"] == number
        ]

    def record_delivery(
        self,
        guid: str,
        event: str,
        payload: Any,
        status_code: int,
        age_seconds: float = 0.0,
        redelivery: bool = False,
    ) -> int:
        """Note one attempt in the App's delivery log, as GitHub would; its id."""
        hook_id = next(self._hook_ids)
        at = datetime.now(UTC) - timedelta(seconds=age_seconds)
        self.hook_deliveries.append(
            {
                "id": hook_id,
                "guid": guid,
                "delivered_at": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "redelivery": redelivery,
                "duration": 0.27,
                "status": "OK"
                if 200 <= status_code < 300
                else "Invalid HTTP Response: 503",
                "status_code": status_code,
                "event": event,
                "action": payload.get("action") if isinstance(payload, dict) else None,
                "installation_id": (payload.get("installation") or {}).get("id")
                if isinstance(payload, dict)
                else None,
                "repository_id": None,
                "throttled_at": None,
            }
        )
        self.hook_payloads[guid] = (event, payload)
        return hook_id

    def revoke_tokens(self) -> None:
        """Make every issued token invalid, as an early rotation would."""
        self.tokens.clear()

    def app(self, base_path: str = "") -> Any:
        """The ASGI app serving this fake under `base_path` (e.g. /api/v3)."""
        b = base_path
        app = Starlette(
            routes=[
                Route(
                    f"{b}/app/installations/{{inst:int}}/access_tokens",
                    self._token,
                    methods=["POST"],
                ),
                Route(
                    f"{b}/repos/{{owner}}/{{repo}}/installation",
                    self._repo_installation,
                    methods=["GET"],
                ),
                Route(
                    f"{b}/repos/{{owner}}/{{repo}}/issues/{{number:int}}/comments",
                    self._comments,
                    methods=["GET", "POST"],
                ),
                Route(
                    f"{b}/repos/{{owner}}/{{repo}}/issues/comments/{{cid:int}}",
                    self._comment,
                    methods=["PATCH"],
                ),
                Route(
                    f"{b}/repos/{{owner}}/{{repo}}/issues/{{number:int}}",
                    self._rendered,
                    methods=["GET"],
                ),
                Route(
                    f"{b}/repos/{{owner}}/{{repo}}/issues/comments/{{number:int}}",
                    self._rendered,
                    methods=["GET"],
                ),
                Route(
                    f"{b}/repos/{{owner}}/{{repo}}/collaborators/{{login}}/permission",
                    self._permission,
                    methods=["GET"],
                ),
                Route(
                    f"{b}/repos/{{owner}}/{{repo}}/contents/{{path:path}}",
                    self._contents,
                    methods=["GET"],
                ),
                Route(
                    f"{b}/repos/{{owner}}/{{repo}}/pulls/{{number:int}}",
                    self._pull,
                    methods=["GET"],
                ),
                Route(
                    f"{b}/repos/{{owner}}/{{repo}}/issues/comments/{{cid:int}}/reactions",
                    self._react,
                    methods=["POST"],
                ),
                Route(
                    f"{b}/repos/{{owner}}/{{repo}}/issues/{{number:int}}/reactions",
                    self._react,
                    methods=["POST"],
                ),
                Route(f"{b}/user", self._user, methods=["GET"]),
                Route(f"{b}/app", self._app, methods=["GET"]),
                Route(f"{b}/app/hook/config", self._hook_config, methods=["GET"]),
                Route(f"{b}/app/installations", self._installations, methods=["GET"]),
                Route(
                    f"{b}/app/hook/deliveries", self._hook_deliveries, methods=["GET"]
                ),
                Route(
                    f"{b}/app/hook/deliveries/{{hook_id}}/attempts",
                    self._redeliver,
                    methods=["POST"],
                ),
                Route(
                    f"{b}/app-manifests/{{code}}/conversions",
                    self._conversion,
                    methods=["POST"],
                ),
                # The manifest flow's form, on the web host.
                Route("/settings/apps/new", self._new_app, methods=["POST"]),
                Route(
                    "/organizations/{org}/settings/apps/new",
                    self._new_app,
                    methods=["POST"],
                ),
                # GitHub's OAuth web flow lives on the web host, not under the API.
                Route("/login/oauth/authorize", self._authorize, methods=["GET"]),
                Route(
                    "/login/oauth/access_token", self._access_token, methods=["POST"]
                ),
            ]
        )

        return _ContractCheck(app, b, self.problems)

    # Checks GitHub makes.

    def _check_headers(self, request: Request) -> None:
        if request.headers.get("accept") not in (
            "application/vnd.github+json",
            "application/vnd.github.full+json",
        ):
            self.problems.append(f"Accept header was {request.headers.get('accept')!r}")
        if request.headers.get("x-github-api-version") != "2022-11-28":
            self.problems.append("X-GitHub-Api-Version missing")
        if not request.headers.get("user-agent"):
            self.problems.append("User-Agent missing")  # GitHub refuses such requests

    def _jwt_ok(self, request: Request) -> bool:
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            return False
        try:
            claims = jwt.decode(
                auth[7:],
                self.public_key,
                algorithms=["RS256"],
                options={"require": ["iat", "exp", "iss"]},
            )
        except jwt.PyJWTError as error:
            self.problems.append(f"bad JWT: {error}")
            return False
        if claims["iss"] != str(self.app_id) or not isinstance(claims["iss"], str):
            self.problems.append("JWT iss is not the app id as a string")
            return False
        if claims["exp"] - claims["iat"] > 600 or claims["iat"] > time.time():
            self.problems.append("JWT lifetime over 10 minutes or issued in the future")
            return False
        return True

    def _installation_of(self, request: Request) -> int | None:
        auth = request.headers.get("authorization", "")
        if not auth.startswith("token "):
            return None
        return self.tokens.get(auth[6:])

    async def _scripted(self, request: Request) -> GitHubFault | None:
        for fault in list(self.faults):
            if fault.method == request.method and fault.path_part in request.url.path:
                self.faults.remove(fault)
                if fault.delay:
                    await asyncio.sleep(fault.delay)
                return fault
        return None

    # Routes.

    async def _token(self, request: Request) -> Response:
        self._check_headers(request)
        self.calls.append((request.method, request.url.path))
        if not self._jwt_ok(request):
            return _message(401, "A JSON web token could not be decoded")
        inst = request.path_params["inst"]
        if inst not in self.installations.values():
            return _message(404, "Not Found")
        self.token_requests += 1
        # Real tokens vary in length; so do ours.
        token = "ghs_" + secrets.token_urlsafe(24 + self.token_requests % 7)
        self.tokens[token] = inst
        expires = datetime.now(UTC) + timedelta(hours=1)
        return JSONResponse(
            {
                "token": token,
                "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "permissions": {"issues": "write"},
            },
            status_code=201,
        )

    async def _repo_installation(self, request: Request) -> Response:
        self._check_headers(request)
        self.calls.append((request.method, request.url.path))
        if not self._jwt_ok(request):
            return _message(401, "A JSON web token could not be decoded")
        name = f"{request.path_params['owner']}/{request.path_params['repo']}"
        if name not in self.installations:
            return _message(404, "Not Found")
        return JSONResponse(
            {
                "id": self.installations[name],
                "app_id": self.app_id,
                "target_type": "Organization",
            }
        )

    async def _comments(self, request: Request) -> Response:
        self._check_headers(request)
        self.calls.append((request.method, request.url.path))
        if self._installation_of(request) is None:
            return _message(401, "Bad credentials")
        repository = f"{request.path_params['owner']}/{request.path_params['repo']}"
        number = request.path_params["number"]
        if request.method == "GET":
            page = int(request.query_params.get("page", "1"))
            per_page = int(request.query_params.get("per_page", "30"))
            found = self.issue_comments(repository, number)[
                (page - 1) * per_page : page * per_page
            ]
            return JSONResponse([self._public(c) for c in found])
        fault = await self._scripted(request)
        if fault and not fault.apply_anyway:
            return _message(fault.status, fault.message, fault.headers)
        body = await request.json()
        if not isinstance(body.get("body"), str) or not body["body"]:
            return _message(422, "Validation Failed")
        if len(body["body"]) > 65536:
            return _message(
                422, "Validation Failed: body is too long (maximum is 65536 characters)"
            )
        self.write_times.append(time.monotonic())
        cid = next(self._ids)
        self.comments[cid] = {
            "id": cid,
            "repository": repository,
            "issue": number,
            "body": body["body"],
            "edits": 0,
        }
        if fault:
            return _message(fault.status, fault.message, fault.headers)
        return JSONResponse(self._public(self.comments[cid]), status_code=201)

    async def _comment(self, request: Request) -> Response:
        self._check_headers(request)
        self.calls.append((request.method, request.url.path))
        if self._installation_of(request) is None:
            return _message(401, "Bad credentials")
        fault = await self._scripted(request)
        if fault:
            return _message(fault.status, fault.message, fault.headers)
        comment = self.comments.get(request.path_params["cid"])
        if comment is None:
            return _message(404, "Not Found")
        body = await request.json()
        if len(body.get("body") or "") > 65536:
            return _message(422, "Validation Failed")
        self.write_times.append(time.monotonic())
        comment["body"] = body["body"]
        comment["edits"] += 1
        return JSONResponse(self._public(comment))

    async def _installation_call(self, request: Request) -> Response | None:
        """The common part of an installation call: headers, token, scripted faults."""
        self._check_headers(request)
        self.calls.append((request.method, request.url.path))
        if self._installation_of(request) is None:
            return _message(401, "Bad credentials")
        fault = await self._scripted(request)
        if fault:
            return _message(fault.status, fault.message, fault.headers)
        return None

    async def _rendered(self, request: Request) -> Response:
        if (refusal := await self._installation_call(request)) is not None:
            return refusal
        if request.headers.get("accept") != "application/vnd.github.full+json":
            self.problems.append("an issue was read without asking for its HTML")
        repository = f"{request.path_params['owner']}/{request.path_params['repo']}"
        body_html = self.rendered.get((repository, request.path_params["number"]), "")
        return JSONResponse(
            {"id": request.path_params["number"], "body": "", "body_html": body_html}
        )

    async def _authorize(self, request: Request) -> Response:
        # The person at the browser approves at once, as `signing_in_as`.
        query = request.query_params
        if query.get("client_id") != self.client_id:
            return Response("unknown client_id", status_code=404)
        redirect_uri = query.get("redirect_uri", "")
        if self.oauth_callback and not _under_callback(
            redirect_uri, self.oauth_callback
        ):
            # GitHub sends the browser to the registered callback with the error.
            error = urlencode({"error": "redirect_uri_mismatch"})
            return Response(
                status_code=302, headers={"Location": f"{self.oauth_callback}?{error}"}
            )
        code = secrets.token_hex(10)
        self.oauth_codes[code] = (self.signing_in_as, redirect_uri)
        back = f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query.get('state', '')})}"
        return Response(status_code=302, headers={"Location": back})

    async def _access_token(self, request: Request) -> Response:
        self.calls.append((request.method, request.url.path))
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        if request.headers.get("accept") != "application/json":
            self.problems.append("the OAuth code exchange did not ask for JSON")
        if (form.get("client_id"), form.get("client_secret")) != (
            self.client_id,
            self.client_secret,
        ):
            return JSONResponse({"error": "incorrect_client_credentials"})
        found = self.oauth_codes.pop(str(form.get("code")), None)
        if found is None or found[1] != form.get("redirect_uri"):
            # GitHub answers 200 with an error field, not an HTTP error.
            return JSONResponse({"error": "bad_verification_code"})
        token = "gho_" + secrets.token_urlsafe(24)
        self.user_tokens[token] = found[0]
        return JSONResponse(
            {"access_token": token, "token_type": "bearer", "scope": ""}
        )

    async def _user(self, request: Request) -> Response:
        self._check_headers(request)
        self.calls.append((request.method, request.url.path))
        auth = request.headers.get("authorization", "")
        login = self.user_tokens.get(auth.removeprefix("Bearer "))
        if not auth.startswith("Bearer ") or login is None:
            return _message(401, "Bad credentials")
        return JSONResponse({"login": login, "id": 5005, "type": "User"})

    async def _permission(self, request: Request) -> Response:
        if (refusal := await self._installation_call(request)) is not None:
            return refusal
        login = request.path_params["login"]
        role = self.roles.get(login)
        if role is None:
            return _message(404, f"{login} is not a user")
        base = {"triage": "read", "maintain": "write"}.get(
            role, role if role in ("admin", "write", "read") else "read"
        )
        return JSONResponse(
            {
                "permission": base,
                "role_name": role,
                "user": {"login": login, "type": "User"},
            }
        )

    async def _contents(self, request: Request) -> Response:
        if (refusal := await self._installation_call(request)) is not None:
            return refusal
        repository = f"{request.path_params['owner']}/{request.path_params['repo']}"
        text = self.files.get((repository, request.path_params["path"]))
        if text is None:
            return _message(404, "Not Found")
        raw = text.encode()
        return JSONResponse(
            {
                "type": "file",
                "encoding": "base64",
                "size": len(raw),
                "name": request.path_params["path"].rsplit("/", 1)[-1],
                "path": request.path_params["path"],
                "content": base64.encodebytes(raw).decode(),
                "sha": hashlib.sha1(raw, usedforsecurity=False).hexdigest(),
            }
        )

    async def _pull(self, request: Request) -> Response:
        if (refusal := await self._installation_call(request)) is not None:
            return refusal
        repository = f"{request.path_params['owner']}/{request.path_params['repo']}"
        pull = self.pulls.get((repository, request.path_params["number"]))
        if pull is None:
            return _message(404, "Not Found")
        return JSONResponse(pull)

    async def _react(self, request: Request) -> Response:
        if (refusal := await self._installation_call(request)) is not None:
            return refusal
        content = (await request.json()).get("content")
        path = request.url.path
        existing = (path, content) in self.reactions
        if not existing:
            self.reactions.append((path, content))
        return JSONResponse(
            {"id": len(self.reactions), "content": content},
            status_code=200 if existing else 201,
        )

    async def _app_call(self, request: Request) -> Response | None:
        """The common part of an App call: headers, the JWT, scripted faults."""
        self._check_headers(request)
        self.calls.append((request.method, request.url.path))
        if not self._jwt_ok(request):
            return _message(401, "A JSON web token could not be decoded")
        fault = await self._scripted(request)
        if fault:
            return _message(fault.status, fault.message, fault.headers)
        return None

    async def _app(self, request: Request) -> Response:
        if (refusal := await self._app_call(request)) is not None:
            return refusal
        return JSONResponse(
            {
                "id": self.app_id,
                "slug": self.app_slug,
                "name": self.app_slug,
                "owner": {"login": self.app_owner, "type": "Organization"},
                "html_url": f"https://github.com/apps/{self.app_slug}",
                "permissions": self.app_permissions,
                "events": self.app_events,
                "installations_count": len(set(self.installations.values())),
            }
        )

    async def _hook_config(self, request: Request) -> Response:
        if (refusal := await self._app_call(request)) is not None:
            return refusal
        return JSONResponse(
            {
                "content_type": "json",
                "insecure_ssl": "0",
                "secret": "********",
                "url": self.hook_url,
            }
        )

    async def _installations(self, request: Request) -> Response:
        if (refusal := await self._app_call(request)) is not None:
            return refusal
        owners: dict[int, str] = {}
        for name, inst in self.installations.items():
            owners.setdefault(inst, name.split("/", 1)[0])
        page = int(request.query_params.get("page", "1"))
        per_page = int(request.query_params.get("per_page", "30"))
        items = [
            {
                "id": inst,
                "account": {"login": login, "type": "Organization"},
                "app_id": self.app_id,
                "target_type": "Organization",
                "repository_selection": "selected",
                "suspended_at": None,
            }
            for inst, login in sorted(owners.items())
        ]
        return JSONResponse(items[(page - 1) * per_page : page * per_page])

    async def _hook_deliveries(self, request: Request) -> Response:
        if (refusal := await self._app_call(request)) is not None:
            return refusal
        per_page = int(request.query_params.get("per_page", "30"))
        cursor = request.query_params.get("cursor")
        newest_first = sorted(self.hook_deliveries, key=lambda d: -d["id"])
        if cursor:
            # GitHub's cursors are opaque; ours hold the last id shown.
            below = int(cursor.removeprefix("v1_"))
            newest_first = [d for d in newest_first if d["id"] < below]
        page = newest_first[:per_page]
        headers = {}
        if len(newest_first) > per_page:
            query = urlencode({"per_page": per_page, "cursor": f"v1_{page[-1]['id']}"})
            url = str(request.url.replace(query=query))
            headers["Link"] = f'<{url}>; rel="next"'
        return JSONResponse(page, headers=headers)

    async def _redeliver(self, request: Request) -> Response:
        if (refusal := await self._app_call(request)) is not None:
            return refusal
        hook_id = int(request.path_params["hook_id"])
        found = next((d for d in self.hook_deliveries if d["id"] == hook_id), None)
        if found is None:
            return _message(404, "Not Found")
        self.redelivery_requests.append(hook_id)
        self.write_times.append(time.monotonic())
        guid = found["guid"]
        event, payload = self.hook_payloads.get(guid, (found["event"], {}))
        # GitHub sends the same payload again, under the same guid.
        status = 503
        if self.hook_target is not None:
            status = await self.hook_target(guid, event, payload)
        self.record_delivery(guid, event, payload, status, redelivery=True)
        return JSONResponse({}, status_code=202)

    async def _new_app(self, request: Request) -> Response:
        # The person at the browser names the App and clicks "Create" at once.
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        try:
            manifest = json.loads(form.get("manifest", ""))
        except ValueError:
            return Response("the manifest is not JSON", status_code=422)
        if not isinstance(manifest, dict) or "url" not in manifest:
            return Response("the manifest needs a url", status_code=422)
        code = secrets.token_hex(10)
        org = request.path_params.get("org")
        self.manifest_codes[code] = {**manifest, "_owner": org or self.signing_in_as}
        redirect_url = manifest.get("redirect_url") or manifest["url"]
        query = {"code": code}
        if request.query_params.get("state"):
            query["state"] = request.query_params["state"]
        return Response(
            status_code=302, headers={"Location": f"{redirect_url}?{urlencode(query)}"}
        )

    async def _conversion(self, request: Request) -> Response:
        self._check_headers(request)
        self.calls.append((request.method, request.url.path))
        fault = await self._scripted(request)
        if fault:
            return _message(fault.status, fault.message, fault.headers)
        manifest = self.manifest_codes.pop(request.path_params["code"], None)
        if manifest is None:
            return _message(404, "Not Found")
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ).decode()
        app_id = 900_000 + len(self.registered) + 1
        slug = str(manifest.get("name") or "app").lower().replace(" ", "-")
        answer = {
            "id": app_id,
            "slug": slug,
            "node_id": f"A_{app_id}",
            "owner": {"login": manifest["_owner"], "type": "User"},
            "name": manifest.get("name"),
            "description": manifest.get("description") or "",
            "external_url": manifest["url"],
            "html_url": f"https://github.com/apps/{slug}",
            "created_at": "2026-12-04T10:00:00Z",
            "updated_at": "2026-12-04T10:00:00Z",
            "permissions": manifest.get("default_permissions") or {},
            "events": manifest.get("default_events") or [],
            "client_id": f"Iv23li{secrets.token_hex(7)}",
            "client_secret": secrets.token_hex(20),
            "webhook_secret": secrets.token_hex(20),
            "pem": pem,
        }
        self.registered.append({"manifest": manifest, "answer": answer})
        # From now on this fake is that App: its JWTs, its OAuth client.
        self.app_id = app_id
        self.app_slug = slug
        self.public_key = (
            key.public_key()
            .public_bytes(
                serialization.Encoding.PEM,
                serialization.PublicFormat.SubjectPublicKeyInfo,
            )
            .decode()
        )
        self.private_keys[app_id] = pem
        self.client_id, self.client_secret = (
            answer["client_id"],
            answer["client_secret"],
        )
        self.app_permissions = dict(answer["permissions"])
        self.app_events = list(answer["events"])
        self.hook_url = (manifest.get("hook_attributes") or {}).get("url", "")
        return JSONResponse(answer, status_code=201)

    def _public(self, comment: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": comment["id"],
            "body": comment["body"],
            "html_url": f"https://github.com/{comment['repository']}/issues/{comment['issue']}#issuecomment-{comment['id']}",
            "user": comment.get("user") or {"login": self.bot_login, "type": "Bot"},
            "performed_via_github_app": (
                None if comment.get("user") else {"id": self.app_id, "slug": "twill"}
            ),
        }


class _ContractCheck:
    """ASGI wrapper: every request must be valid under GitHub's REST description
    (tests/contracts/github-rest-subset.yaml); problems are recorded, not raised."""

    def __init__(self, app: Any, base_path: str, problems: list[str]) -> None:
        self.app, self.base_path, self.problems = app, base_path, problems

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        messages, raw = [], b""
        while True:
            message = await receive()
            messages.append(message)
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = "<not JSON>"
        path = scope["path"]
        if path.startswith(("/login/oauth/", "/settings/", "/organizations/")):
            # The OAuth and manifest web flows are outside GitHub's REST description.
            await self.app(scope, _replay(messages), send)
            return
        if self.base_path and path.startswith(self.base_path):
            path = path[len(self.base_path) :]
        query = parse_qs(
            scope.get("query_string", b"").decode(), keep_blank_values=True
        )
        for problem in check_request(scope["method"], path, query, body):
            self.problems.append(f"{scope['method']} {path}: {problem}")

        await self.app(scope, _replay(messages), send)


def _replay(messages: list[Any]) -> Any:
    async def replay() -> Any:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    return replay


def _message(
    status: int, message: str, headers: dict[str, str] | None = None
) -> Response:
    return JSONResponse(
        {"message": message, "documentation_url": "https://docs.github.com/rest"},
        status_code=status,
        headers=headers,
    )


def _under_callback(redirect_uri: str, callback: str) -> bool:
    """GitHub's rule for redirect_uri: the callback's origin, a path beneath it."""
    sent, registered = urlsplit(redirect_uri), urlsplit(callback)
    return (sent.scheme, sent.netloc) == (registered.scheme, registered.netloc) and (
        sent.path + "/"
    ).startswith(registered.path.rstrip("/") + "/")
