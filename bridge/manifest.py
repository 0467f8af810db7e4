"""The GitHub App manifest the bridge registers itself from (pure).

Source: docs.github.com, "Registering a GitHub App from a manifest": the
browser POSTs a `manifest` field (JSON) to `/settings/apps/new` (a personal
account) or `/organizations/ORG/settings/apps/new` on GitHub's web host, with
a `state` in the query; GitHub sends the browser back to `redirect_url` with
`code` and `state`, and the code is exchanged within an hour.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, urlencode

# What the bridge needs: issues and pull requests to comment and react,
# contents to read .github/twill.yml, metadata (GitHub adds it to every App).
REQUIRED_PERMISSIONS = {
    "issues": "write",
    "pull_requests": "write",
    "contents": "read",
    "metadata": "read",
}
# Labels on pull requests arrive as pull_request events.
REQUIRED_EVENTS = ("issues", "issue_comment", "pull_request")
DESCRIPTION = "Hands labelled issues and /twill commands to Twill's coding agents."

# GitHub: App names are at most 34 characters; logins are letters, digits
# and single hyphens, at most 39 characters.
NAME_MAX = 34
LOGIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}$")


class ManifestProblem(Exception):
    """The form's answers cannot make a manifest; the message says which."""


def manifest(public_url: str, name: str) -> dict[str, Any]:
    """The manifest for an App named `name` serving the bridge at `public_url`."""
    base = public_url.rstrip("/")
    return {
        "name": name,
        "url": base,
        "description": DESCRIPTION,
        "hook_attributes": {"url": f"{base}/api/github/webhooks", "active": True},
        "redirect_url": f"{base}/setup/callback",
        # The dashboard's sign-in with GitHub uses the App's OAuth client.
        "callback_urls": [f"{base}/admin/oauth/callback"],
        "public": False,
        "default_permissions": dict(REQUIRED_PERMISSIONS),
        "default_events": list(REQUIRED_EVENTS),
    }


def clean_name(raw: str | None) -> str:
    """The App's name from the form; ManifestProblem when it cannot be one."""
    name = " ".join((raw or "").split())
    if not name:
        raise ManifestProblem("give the App a name")
    if len(name) > NAME_MAX:
        raise ManifestProblem(
            f"GitHub takes App names of at most {NAME_MAX} characters"
        )
    return name


def clean_org(raw: str | None) -> str | None:
    """The organisation's login, or None for a personal account."""
    org = (raw or "").strip()
    if not org:
        return None
    if not LOGIN.match(org):
        raise ManifestProblem(f"{org[:40]!r} is not an organisation's login")
    return org


def new_app_url(web_url: str, org: str | None, state: str) -> str:
    """Where the manifest form posts: the account's or the organisation's new-App page."""
    base = web_url.rstrip("/")
    path = (
        f"/organizations/{quote(org, safe='')}/settings/apps/new"
        if org
        else "/settings/apps/new"
    )
    return f"{base}{path}?{urlencode({'state': state})}"
