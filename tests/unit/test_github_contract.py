"""The GitHub contract check: valid calls pass, each kind of mistake is named."""

from __future__ import annotations

import pytest
from jsonschema import Draft7Validator

from tests.contracts.github_contract import HTTP_METHODS, check_request, subset

Request = tuple[str, str, dict[str, list[str]], object | None]

# One valid call per operation the bridge may make, as it would send it.
VALID: dict[str, Request] = {
    "get-app": ("GET", "/app", {}, None),
    "get-hook-config": ("GET", "/app/hook/config", {}, None),
    "list-installations": (
        "GET",
        "/app/installations",
        {"per_page": ["100"], "page": ["2"]},
        None,
    ),
    "create-token": ("POST", "/app/installations/42/access_tokens", {}, None),
    "create-scoped-token": (
        "POST",
        "/app/installations/42/access_tokens",
        {},
        {"repository_ids": [7], "permissions": {"issues": "write", "contents": "read"}},
    ),
    "repo-installation": ("GET", "/repos/octo/hello/installation", {}, None),
    "list-deliveries": (
        "GET",
        "/app/hook/deliveries",
        {"per_page": ["50"], "cursor": ["v1_abc"], "status": ["failure"]},
        None,
    ),
    "redeliver": ("POST", "/app/hook/deliveries/12345/attempts", {}, None),
    "manifest-conversion": ("POST", "/app-manifests/a1b2c3/conversions", {}, None),
    "get-issue": ("GET", "/repos/octo/hello/issues/7", {}, None),
    "list-comments": (
        "GET",
        "/repos/octo/hello/issues/7/comments",
        {"per_page": ["100"], "page": ["1"], "since": ["2026-12-01T00:00:00Z"]},
        None,
    ),
    "create-comment": (
        "POST",
        "/repos/octo/hello/issues/7/comments",
        {},
        {"body": "On it."},
    ),
    "update-comment": (
        "PATCH",
        "/repos/octo/hello/issues/comments/9001",
        {},
        {"body": "Done."},
    ),
    "get-comment": ("GET", "/repos/octo/hello/issues/comments/9001", {}, None),
    "react-to-comment": (
        "POST",
        "/repos/octo/hello/issues/comments/9001/reactions",
        {},
        {"content": "eyes"},
    ),
    "react-to-issue": (
        "POST",
        "/repos/octo/hello/issues/7/reactions",
        {},
        {"content": "+1"},
    ),
    "collaborator-permission": (
        "GET",
        "/repos/octo/hello/collaborators/mona/permission",
        {},
        None,
    ),
    "get-contents-nested": (
        "GET",
        "/repos/octo/hello/contents/.github/twill.yml",
        {"ref": ["main"]},
        None,
    ),
    "get-pull": ("GET", "/repos/octo/hello/pulls/12", {}, None),
    "get-repo": ("GET", "/repos/octo/hello", {}, None),
    "lowercase-method": ("get", "/repos/octo/hello", {}, None),
}

# Each mistake, and a fragment the problem report must contain.
INVALID: dict[str, tuple[Request, str]] = {
    "wrong-method": (("DELETE", "/app", {}, None), "has no DELETE operation"),
    "method-outside-subset": (
        ("DELETE", "/repos/octo/hello/issues/comments/9001", {}, None),
        "described: GET, PATCH",
    ),
    "unknown-path": (("GET", "/repos/octo/hello/frobnicate", {}, None), "no path"),
    "enterprise-prefix-left-on": (("GET", "/api/v3/app", {}, None), "no path"),
    "non-integer-issue-number": (
        ("GET", "/repos/octo/hello/issues/seven/comments", {}, None),
        "issue_number: 'seven' is not of type 'integer'",
    ),
    "non-integer-installation-id": (
        ("POST", "/app/installations/abc/access_tokens", {}, None),
        "installation_id",
    ),
    "per-page-500": (
        ("GET", "/repos/octo/hello/issues/7/comments", {"per_page": ["500"]}, None),
        "per_page: 500 is greater than the maximum of 100",
    ),
    "per-page-not-a-number": (
        ("GET", "/app/installations", {"per_page": ["lots"]}, None),
        "per_page: 'lots' is not of type 'integer'",
    ),
    "page-given-twice": (
        ("GET", "/app/installations", {"page": ["1", "2"]}, None),
        "'page' given 2 times",
    ),
    "unknown-query-parameter": (
        ("GET", "/repos/octo/hello/issues/7/comments", {"sort": ["created"]}, None),
        "unknown query parameter 'sort'",
    ),
    "delivery-status-not-in-enum": (
        ("GET", "/app/hook/deliveries", {"status": ["failed"]}, None),
        "status: 'failed' is not one of",
    ),
    "comment-missing-body": (
        ("POST", "/repos/octo/hello/issues/7/comments", {}, {"text": "On it."}),
        "'body' is a required property",
    ),
    "comment-body-not-a-string": (
        ("PATCH", "/repos/octo/hello/issues/comments/9001", {}, {"body": 42}),
        "body['body']: 42 is not of type 'string'",
    ),
    "comment-without-any-body": (
        ("POST", "/repos/octo/hello/issues/7/comments", {}, None),
        "needs a request body",
    ),
    "reaction-party": (
        ("POST", "/repos/octo/hello/issues/7/reactions", {}, {"content": "party"}),
        "'party' is not one of",
    ),
    "token-permission-level": (
        (
            "POST",
            "/app/installations/42/access_tokens",
            {},
            {"permissions": {"issues": "admin"}},
        ),
        "body['permissions']['issues']: 'admin' is not one of",
    ),
    "extra-json-on-get": (
        ("GET", "/repos/octo/hello/issues/7", {}, {"body": "hi"}),
        "takes no request body",
    ),
    "json-on-contents-get": (
        ("GET", "/repos/octo/hello/contents/README.md", {}, {}),
        "takes no request body",
    ),
    "json-on-redelivery": (
        ("POST", "/app/hook/deliveries/12345/attempts", {}, {"force": True}),
        "takes no request body",
    ),
}

# The operations the subset must hold: exactly those the brief named.
OPERATIONS = {
    ("post", "/app/installations/{installation_id}/access_tokens"),
    ("get", "/repos/{owner}/{repo}/installation"),
    ("get", "/app"),
    ("get", "/app/hook/config"),  # doctor: where the App's webhook points
    ("get", "/app/installations"),
    ("get", "/app/hook/deliveries"),
    ("post", "/app/hook/deliveries/{delivery_id}/attempts"),
    ("post", "/app-manifests/{code}/conversions"),
    ("get", "/repos/{owner}/{repo}/issues/{issue_number}"),
    ("get", "/repos/{owner}/{repo}/issues/{issue_number}/comments"),
    ("post", "/repos/{owner}/{repo}/issues/{issue_number}/comments"),
    ("patch", "/repos/{owner}/{repo}/issues/comments/{comment_id}"),
    ("get", "/repos/{owner}/{repo}/issues/comments/{comment_id}"),
    ("post", "/repos/{owner}/{repo}/issues/comments/{comment_id}/reactions"),
    ("post", "/repos/{owner}/{repo}/issues/{issue_number}/reactions"),
    ("get", "/repos/{owner}/{repo}/collaborators/{username}/permission"),
    ("get", "/repos/{owner}/{repo}/contents/{path}"),
    ("get", "/repos/{owner}/{repo}/pulls/{pull_number}"),
    ("get", "/repos/{owner}/{repo}"),
    ("get", "/user"),  # the dashboard's sign-in with GitHub
}


@pytest.mark.parametrize("request_", VALID.values(), ids=VALID.keys())
def test_valid_requests_pass(request_: Request) -> None:
    assert check_request(*request_) == []


@pytest.mark.parametrize(("request_", "fragment"), INVALID.values(), ids=INVALID.keys())
def test_invalid_requests_are_named(request_: Request, fragment: str) -> None:
    problems = check_request(*request_)
    assert problems, "expected a problem"
    assert any(fragment in problem for problem in problems), problems


def test_subset_holds_exactly_the_operations_we_call() -> None:
    paths = subset()["paths"]
    found = {(m, t) for t, item in paths.items() for m in item if m in HTTP_METHODS}
    assert found == OPERATIONS


def test_every_schema_in_the_subset_is_valid_json_schema() -> None:
    for item in subset()["paths"].values():
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            for param in operation.get("parameters", []):
                Draft7Validator.check_schema(param["schema"])
            body = operation.get("requestBody")
            if body is not None:
                Draft7Validator.check_schema(
                    body["content"]["application/json"]["schema"]
                )
