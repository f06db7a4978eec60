"""Check every request the Cloudflare targets send against Cloudflare's OpenAPI extract.

The targets run against the sandbox over real HTTP; each request they sent is then
matched (method, templated path, query parameter names, JSON body field names) against
tests/data/specs/cloudflare-openapi-subset-pages-workers-secrets.json, as the provider
contract tests do for Resend, Stripe and Google.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest

from providers.http import HttpClient
from rotator.sandbox import Sandbox, SeededValue
from rotator.secret import Secret
from rotator.targets.cloudflare_pages import PagesVariableTarget
from rotator.targets.cloudflare_workers import WorkersSecretTarget
from tests.providers.provider_specs import OpenApi

SPEC = "cloudflare-openapi-subset-pages-workers-secrets.json"
PREFIX = "/cloudflare/client/v4"
# The 2024 extract lacks the plain script secrets path; its Workers-for-Platforms twin has
# the byte-identical schemas (SOURCES.md), so requests are checked against that one.
TWIN = ("/workers/scripts/", "/workers/dispatch/namespaces/ns/scripts/")
BULK_SECRET_FIELDS = {"name", "type", "text"}


class Credentials:
    def __init__(self, token: str) -> None:
        self.token = token

    def secret(self, name: str) -> Secret:
        assert name == "cloudflare_api_token"
        return Secret(self.token)

    def path(self, name: str) -> Any:
        raise AssertionError("the Cloudflare targets read no credential file")


def _check_bulk(request: httpx.Request) -> list[str]:
    """The changelog's shape: {"secrets": {NAME: {name, type, text} | null}}."""
    body = json.loads(request.content)
    problems = [f"secrets-bulk body field {k!r} not documented" for k in body if k != "secrets"]
    for name, secret in body.get("secrets", {}).items():
        if secret is None:
            continue
        problems += [
            f"secrets-bulk {name}: field {k!r} not documented"
            for k in secret
            if k not in BULK_SECRET_FIELDS
        ]
        if secret.get("name") != name or secret.get("type") != "secret_text":
            problems.append(f"secrets-bulk {name}: name and type must be the key and secret_text")
    return problems


def _check_project_patch(request: httpx.Request, spec: OpenApi) -> list[str]:
    """`pages_project-patch` is documented by its example only: compare with that shape."""
    example = spec.doc["components"]["schemas"]["pages_project-patch"]["example"]
    documented_var = {"type", "value"}
    body = json.loads(request.content)
    found = [f"project PATCH field {k!r} not in the example" for k in body if k not in example]
    for config_name, config in body.get("deployment_configs", {}).items():
        if config_name not in ("production", "preview"):
            found.append(f"project PATCH config {config_name!r} is not production or preview")
        allowed = set(example["deployment_configs"]["production"])
        found += [f"config field {k!r} not in the example" for k in config if k not in allowed]
        for name, var in config.get("env_vars", {}).items():
            if var is not None and set(var) - documented_var:
                found.append(f"env var {name}: fields {sorted(set(var) - documented_var)}")
    return found


def problems(requests: list[httpx.Request]) -> list[str]:
    spec = OpenApi(SPEC)
    found: list[str] = []
    for request in requests:
        path = request.url.path.removeprefix(PREFIX)
        if path.endswith("/secrets-bulk"):
            found += [f"{request.method} {path}: {p}" for p in _check_bulk(request)]
            continue
        if path.endswith("/secrets"):
            path = path.replace(*TWIN)
        if request.method == "PATCH" and re.fullmatch(
            r"/accounts/[^/]+/pages/projects/[^/]+", path
        ):
            found += _check_project_patch(request, spec)
            continue
        if request.method == "POST" and path.endswith(("/retry", "/rollback")):
            # The spec requires a JSON body and gives it no schema: `{}` is all there is.
            if json.loads(request.content or b"null") != {}:
                found.append(f"POST {path}: the body must be {{}}")
            continue
        moved = httpx.Request(
            request.method,
            request.url.copy_with(path=path),
            headers=request.headers,
            content=request.content,
        )
        found += spec.check(moved)
    return found


@pytest.fixture
def recorded(sandbox: Sandbox) -> tuple[HttpClient, list[httpx.Request]]:
    sent: list[httpx.Request] = []
    client = httpx.Client(event_hooks={"request": [sent.append]}, timeout=10)
    return HttpClient(client, sleep=lambda s: None), sent


def test_a_full_publish_to_both_targets_sends_only_what_the_spec_documents(
    sandbox: Sandbox, seeded: dict[str, SeededValue], recorded: Any
) -> None:
    http, sent = recorded
    urls = {"base_url": sandbox.base_url + PREFIX}
    credentials = Credentials(sandbox.cloudflare_token)
    account = sandbox.account_id
    values = {"BANDOFBAKERS_RESEND_API_KEY": Secret("re_contract_value")}
    for env, deployment, extra in (
        ("staging", "preview", {"branch": "staging"}),
        ("production", "production", {}),
    ):
        workers = WorkersSecretTarget(
            {"account_id": account, "script": f"bandofbakers-{env}"}, env, http, credentials, urls
        )
        workers.publish(values)
        pages = PagesVariableTarget(
            {
                "account_id": account,
                "project": "bandofbakers",
                "deployment": deployment,
                "poll_interval": 0.01,
                **extra,
            },
            env,
            http,
            credentials,
            urls,
        )
        pages.publish(values)
        pages.finish()
        assert any("rebuilt deployment" in line for line in pages.report())
    methods = {(r.method, r.url.path.rsplit("/", 1)[-1]) for r in sent}
    assert ("PATCH", "secrets-bulk") in methods and ("POST", "retry") in methods
    assert problems(sent) == []


def test_the_gradual_deployment_path_sends_only_what_the_spec_documents(
    sandbox: Sandbox, seeded: dict[str, SeededValue], recorded: Any
) -> None:
    http, sent = recorded
    with sandbox.world.lock:
        sandbox.world.cloudflare.scripts["bandofbakers-staging"].start_gradual(sandbox.world.now())
    workers = WorkersSecretTarget(
        {"account_id": sandbox.account_id, "script": "bandofbakers-staging"},
        "staging",
        http,
        Credentials(sandbox.cloudflare_token),
        {"base_url": sandbox.base_url + PREFIX},
    )
    with pytest.raises(Exception, match="gradual deployment"):
        workers.publish({"BANDOFBAKERS_RESEND_API_KEY": Secret("re_contract_value")})
    assert {r.url.path.rsplit("/", 1)[-1] for r in sent} >= {"deployments", "versions"}
    assert problems(sent) == []
