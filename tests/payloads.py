"""Webhook payloads shaped like GitHub's, built from a few arguments.

The field sets follow the payloads GitHub documents for `issues` and
`issue_comment` ("Webhook events and payloads"); values are our own.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

REPO = "octo-org/widgets"
REPO_ID = 4242
INSTALLATION = 77


def user(login: str, kind: str = "User", uid: int = 1001) -> dict[str, Any]:
    return {
        "login": login,
        "id": uid,
        "node_id": f"U_{uid}",
        "avatar_url": f"https://avatars.githubusercontent.com/u/{uid}?v=4",
        "html_url": f"https://github.com/{login}",
        "type": kind,
        "site_admin": False,
    }


def repository(
    full_name: str = REPO, repo_id: int = REPO_ID, private: bool = False
) -> dict[str, Any]:
    owner, name = full_name.split("/")
    return {
        "id": repo_id,
        "node_id": f"R_{repo_id}",
        "name": name,
        "full_name": full_name,
        "private": private,
        "owner": user(owner, "Organization", 5000),
        "html_url": f"https://github.com/{full_name}",
        "default_branch": "main",
        "visibility": "private" if private else "public",
    }


def label(name: str, lid: int = 300) -> dict[str, Any]:
    return {
        "id": lid,
        "node_id": f"LA_{lid}",
        "name": name,
        "color": "ededed",
        "default": False,
        "description": None,
    }


def issue(
    number: int = 12,
    title: str = "Widgets crash on empty input",
    body: str | None = "Steps:\n1. Open the widget\n2. Submit nothing",
    labels: list[str] = (),  # type: ignore[assignment]
    author: str = "reporter",
    association: str = "CONTRIBUTOR",
    updated_at: str = "2026-12-01T10:00:00Z",
    full_name: str = REPO,
    pull_request: bool = False,
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": 900000 + number,
        "node_id": f"I_{number}",
        "number": number,
        "title": title,
        "body": body,
        "user": user(author, uid=2002),
        "labels": [label(n, 300 + i) for i, n in enumerate(labels)],
        "state": "open",
        "locked": False,
        "comments": 0,
        "created_at": "2026-12-01T09:59:58Z",
        "updated_at": updated_at,
        "author_association": association,
        "html_url": f"https://github.com/{full_name}/issues/{number}",
        "url": f"https://api.github.com/repos/{full_name}/issues/{number}",
    }
    if pull_request:
        data["pull_request"] = {
            "url": f"https://api.github.com/repos/{full_name}/pulls/{number}",
            "html_url": f"https://github.com/{full_name}/pull/{number}",
        }
        data["html_url"] = f"https://github.com/{full_name}/pull/{number}"
    return data


def _envelope(
    action: str,
    sender: str,
    sender_type: str,
    installation: int | None,
    full_name: str,
    private: bool,
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "action": action,
        "repository": repository(full_name, private=private),
        "organization": {"login": full_name.split("/")[0], "id": 5000},
        "sender": user(sender, sender_type, 3003),
    }
    if installation is not None:
        data["installation"] = {"id": installation, "node_id": f"MDIz_{installation}"}
    return data


def issues_labeled(
    label_name: str = "twill",
    sender: str = "maintainer",
    sender_type: str = "User",
    installation: int | None = INSTALLATION,
    full_name: str = REPO,
    private: bool = False,
    **issue_fields: Any,
) -> dict[str, Any]:
    data = _envelope("labeled", sender, sender_type, installation, full_name, private)
    labels = list(issue_fields.pop("labels", [label_name]))
    data["issue"] = issue(labels=labels, full_name=full_name, **issue_fields)
    data["label"] = label(label_name)
    return data


def issues_opened(
    labels: list[str] = ("twill",), sender: str = "maintainer", **issue_fields: Any
) -> dict[str, Any]:  # type: ignore[assignment]
    data = _envelope("opened", sender, "User", INSTALLATION, REPO, False)
    data["issue"] = issue(labels=list(labels), **issue_fields)
    return data


def comment_created(
    body: str | None,
    sender: str = "maintainer",
    sender_type: str = "User",
    comment_id: int = 555,
    action: str = "created",
    installation: int | None = INSTALLATION,
    issue_body: str | None = "Steps:\n1. Open the widget\n2. Submit nothing",
    **issue_fields: Any,
) -> dict[str, Any]:
    data = _envelope(action, sender, sender_type, installation, REPO, False)
    data["issue"] = issue(body=issue_body, **issue_fields)
    data["comment"] = {
        "id": comment_id,
        "node_id": f"IC_{comment_id}",
        "body": body,
        "user": user(sender, sender_type, 3003),
        "author_association": "MEMBER",
        # Written just now, as a live delivery's comment is.
        "created_at": _now(),
        "updated_at": _now(),
        "html_url": f"https://github.com/{REPO}/issues/12#issuecomment-{comment_id}",
    }
    return data


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def with_changes(payload: dict[str, Any], old_body: str) -> dict[str, Any]:
    edited = copy.deepcopy(payload)
    edited["action"] = "edited"
    edited["changes"] = {"body": {"from": old_body}}
    return edited


def pull_request_labeled(
    label_name: str = "twill", number: int = 21, sender: str = "maintainer"
) -> dict[str, Any]:
    data = _envelope("labeled", sender, "User", INSTALLATION, REPO, False)
    pr = issue(number=number, title="Handle empty input", labels=[label_name])
    pr.pop("pull_request", None)
    pr["html_url"] = f"https://github.com/{REPO}/pull/{number}"
    pr["base"] = {"ref": "main"}
    pr["head"] = {"ref": "fix/empty"}
    data["pull_request"] = pr
    data["label"] = label(label_name)
    return data
