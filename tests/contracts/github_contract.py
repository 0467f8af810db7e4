"""Check one request against the subset of GitHub's REST description we keep.

The subset lives next to this file (github-rest-subset.yaml). It is read once,
on the first check, and its `$ref`s are resolved then, so each check is only
matching and JSON Schema validation.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import yaml
from jsonschema import Draft7Validator

SUBSET = Path(__file__).with_name("github-rest-subset.yaml")
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

Schema = Mapping[str, Any]


@dataclass(frozen=True)
class Route:
    """One path template of the subset and the operations defined on it."""

    template: str
    pattern: re.Pattern[str]
    literal_segments: int
    operations: Mapping[str, Mapping[str, Any]]


def check_request(
    method: str, path: str, query: dict[str, list[str]], body: object | None
) -> list[str]:
    """Problems with this request under GitHub's REST description; [] when valid."""
    routes = [route for route in _routes() if route.pattern.fullmatch(path)]
    if not routes:
        return [f"{method.upper()} {path}: no path in GitHub's description matches"]
    for route in routes:
        operation = route.operations.get(method.lower())
        if operation is not None:
            return _check_operation(route, operation, method, path, query, body)
    described = ", ".join(name.upper() for name in routes[0].operations)
    return [
        f"{method.upper()} {path}: {routes[0].template} has no {method.upper()}"
        f" operation (described: {described})"
    ]


def subset() -> Mapping[str, Any]:
    """The subset document, with every `$ref` replaced by what it points to."""
    return _document()


# Loading.


@functools.cache
def _document() -> Mapping[str, Any]:
    raw = yaml.safe_load(SUBSET.read_text(encoding="utf-8"))
    resolved: Mapping[str, Any] = _resolve(raw, raw)
    return resolved


@functools.cache
def _routes() -> tuple[Route, ...]:
    # A literal segment beats a template one, as in OpenAPI path matching:
    # the most literal templates are tried first.
    routes = [_route(t, item) for t, item in _document()["paths"].items()]
    return tuple(sorted(routes, key=lambda route: -route.literal_segments))


def _route(template: str, item: Mapping[str, Any]) -> Route:
    operations = {m: op for m, op in item.items() if m in HTTP_METHODS}
    multi = {
        param["name"]
        for op in operations.values()
        for param in op.get("parameters", [])
        if param.get("x-multi-segment")
    }
    segments = template.strip("/").split("/")
    regex = "/" + "/".join(_segment_regex(s, multi) for s in segments)
    literals = sum(1 for s in segments if not s.startswith("{"))
    return Route(template, re.compile(regex), literals, operations)


def _segment_regex(segment: str, multi_segment: set[str]) -> str:
    if not (segment.startswith("{") and segment.endswith("}")):
        return re.escape(segment)
    name = segment[1:-1]
    # GitHub marks parameters such as a contents `path` as spanning slashes.
    return f"(?P<{name}>.+)" if name in multi_segment else f"(?P<{name}>[^/]+)"


def _resolve(node: Any, root: Mapping[str, Any]) -> Any:
    if isinstance(node, dict):
        if "$ref" in node:
            return _resolve(_pointer(root, node["$ref"]), root)
        return {key: _resolve(value, root) for key, value in node.items()}
    if isinstance(node, list):
        return [_resolve(item, root) for item in node]
    return node


def _pointer(root: Mapping[str, Any], ref: str) -> Any:
    if not ref.startswith("#/"):
        raise ValueError(f"only local references are supported, got {ref}")
    target: Any = root
    for part in ref[2:].split("/"):
        target = target[part.replace("~1", "/").replace("~0", "~")]
    return target


# Checking.


def _check_operation(
    route: Route,
    operation: Mapping[str, Any],
    method: str,
    path: str,
    query: dict[str, list[str]],
    body: object | None,
) -> list[str]:
    match = route.pattern.fullmatch(path)
    assert match is not None  # the caller picked this route by matching it
    parameters = operation.get("parameters", [])
    problems = [
        *_path_problems(parameters, match.groupdict()),
        *_query_problems(parameters, query),
        *_body_problems(operation.get("requestBody"), body),
    ]
    label = f"{method.upper()} {route.template}"
    return [f"{label}: {problem}" for problem in problems]


def _path_problems(parameters: list[Schema], values: dict[str, str]) -> list[str]:
    problems = []
    for param in parameters:
        if param["in"] == "path":
            raw = unquote(values[param["name"]])
            problems += _value_problems(param["name"], raw, param["schema"])
    return problems


def _query_problems(parameters: list[Schema], query: dict[str, list[str]]) -> list[str]:
    known = {p["name"]: p for p in parameters if p["in"] == "query"}
    problems = [
        f"unknown query parameter {name!r}" for name in query if name not in known
    ]
    for name, param in known.items():
        values = query.get(name, [])
        if not values and param.get("required"):
            problems.append(f"query parameter {name!r} is required")
        if len(values) > 1 and param["schema"].get("type") != "array":
            problems.append(f"query parameter {name!r} given {len(values)} times")
        for raw in values:
            problems += _value_problems(name, raw, param["schema"])
    return problems


def _value_problems(name: str, raw: str, schema: Schema) -> list[str]:
    value = _coerce(raw, schema)
    return [
        f"{name}: {error.message}"
        for error in Draft7Validator(schema).iter_errors(value)
    ]


def _coerce(raw: str, schema: Schema) -> object:
    # Path and query values arrive as text; read them as the schema's type, and
    # leave text that does not fit so the validator reports it.
    kind = schema.get("type")
    if kind == "integer" and re.fullmatch(r"-?[0-9]+", raw):
        return int(raw)
    if kind == "boolean" and raw in ("true", "false"):
        return raw == "true"
    return raw


def _body_problems(request_body: Schema | None, body: object | None) -> list[str]:
    if request_body is None:
        return [] if body is None else ["takes no request body, but one was sent"]
    if body is None:
        return ["needs a request body"] if request_body.get("required") else []
    schema = request_body["content"]["application/json"].get("schema", {})
    return [
        f"body{''.join(f'[{part!r}]' for part in error.absolute_path)}: {error.message}"
        for error in Draft7Validator(schema).iter_errors(body)
    ]
