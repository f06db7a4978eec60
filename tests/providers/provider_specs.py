"""Check recorded requests against the official specs in tests/data/specs."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx

SPECS = Path(__file__).resolve().parents[1] / "data" / "specs"

# No machine-readable spec exists for Google's token endpoint (PROVIDERS.md §4c, §5).
TOKEN_FORM_FIELDS = {
    "grant_type",
    "assertion",
    "code",
    "client_id",
    "client_secret",
    "redirect_uri",
}


def _template(path: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", path)
    return re.compile("".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts))


@cache
def _load(name: str) -> dict[str, Any]:
    return json.loads((SPECS / name).read_text())


def _body(request: httpx.Request) -> Any:
    if not request.content:
        return None
    if request.headers.get("content-type", "").startswith("application/json"):
        return json.loads(request.content)
    return None


class OpenApi:
    def __init__(self, name: str) -> None:
        self.doc = _load(name)

    def _resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            target: Any = self.doc
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            node = target
        return node

    def _fields(self, schema: dict[str, Any], value: Any, where: str) -> list[str]:
        schema = self._resolve(schema)
        problems = []
        if isinstance(value, dict):
            props = schema.get("properties", {})
            for key, inner in value.items():
                if key not in props:
                    problems.append(f"{where}: field {key!r} not in spec schema")
                else:
                    problems += self._fields(props[key], inner, f"{where}.{key}")
        return problems

    def check(self, request: httpx.Request) -> list[str]:
        path = request.url.path
        matches = [(t, i) for t, i in self.doc["paths"].items() if _template(t).fullmatch(path)]
        if not matches:
            return [f"{request.method} {path}: path not in spec"]
        template, item = matches[0]
        op = item.get(request.method.lower())
        if op is None:
            return [f"{request.method} {path}: method not in spec for {template}"]
        params = [self._resolve(p) for p in item.get("parameters", []) + op.get("parameters", [])]
        query_names = {p["name"] for p in params if p.get("in") == "query"}
        problems = [
            f"{request.method} {template}: query parameter {q!r} not in spec"
            for q in request.url.params
            if q not in query_names
        ]
        body = _body(request)
        if body is not None:
            content = op.get("requestBody", {}).get("content", {})
            schema = content.get("application/json", {}).get("schema")
            if schema is None:
                problems.append(f"{request.method} {template}: a JSON body the spec does not take")
            else:
                problems += self._fields(schema, body, f"{request.method} {template} body")
        return problems


class Discovery:
    def __init__(self, name: str) -> None:
        self.doc = _load(name)
        self.methods: list[dict[str, Any]] = []
        self._collect(self.doc)

    def _collect(self, node: dict[str, Any]) -> None:
        self.methods += node.get("methods", {}).values()
        for child in node.get("resources", {}).values():
            self._collect(child)

    def _fields(self, schema_name: str, value: Any, where: str) -> list[str]:
        schema = self.doc["schemas"][schema_name]
        problems = []
        if isinstance(value, dict):
            props = schema.get("properties", {})
            for key, inner in value.items():
                prop = props.get(key)
                if prop is None:
                    problems.append(f"{where}: field {key!r} not in {schema_name}")
                    continue
                if "$ref" in prop:
                    problems += self._fields(prop["$ref"], inner, f"{where}.{key}")
                elif prop.get("type") == "array" and "$ref" in prop.get("items", {}):
                    for item in inner:
                        problems += self._fields(prop["items"]["$ref"], item, f"{where}.{key}[]")
        return problems

    def check(self, request: httpx.Request) -> list[str]:
        path = request.url.path.lstrip("/").removeprefix(self.doc.get("servicePath", ""))
        for method in self.methods:
            if method["httpMethod"] == request.method and _template(
                method.get("flatPath", method["path"])
            ).fullmatch(path):
                break
        else:
            return [f"{request.method} {path}: no method in {self.doc['id']}"]
        names = {n for n, p in method.get("parameters", {}).items() if p["location"] == "query"}
        names |= set(self.doc.get("parameters", {}))
        problems = [
            f"{method['id']}: query parameter {q!r} not in spec"
            for q in request.url.params
            if q not in names
        ]
        body = _body(request)
        if body is not None:
            ref = method.get("request", {}).get("$ref")
            if ref is None:
                problems.append(f"{method['id']}: a JSON body the spec does not take")
            else:
                problems += self._fields(ref, body, f"{method['id']} body")
        return problems


class TokenEndpoint:
    def check(self, request: httpx.Request) -> list[str]:
        if request.method != "POST" or request.url.path != "/token":
            return [f"{request.method} {request.url.path}: not the token endpoint"]
        form = parse_qs(request.content.decode())
        return [
            f"token form field {k!r} is not documented" for k in form if k not in TOKEN_FORM_FIELDS
        ]


def spec_for(host: str) -> OpenApi | Discovery | TokenEndpoint:
    """Return the spec that governs requests to `host`."""
    return {
        "api.resend.com": lambda: OpenApi("resend-openapi.json"),
        "api.stripe.com": lambda: OpenApi("stripe-openapi-subset-balance-account.json"),
        "apikeys.googleapis.com": lambda: Discovery("google-apikeys.v2.discovery.json"),
        "identitytoolkit.googleapis.com": lambda: Discovery(
            "google-identitytoolkit.v1.discovery.json"
        ),
        "oauth2.googleapis.com": TokenEndpoint,
    }[host]()


def problems(requests: list[httpx.Request]) -> list[str]:
    """Return every way the recorded requests stray from their specs."""
    found: list[str] = []
    for request in requests:
        found += spec_for(request.url.host).check(request)
    return found
