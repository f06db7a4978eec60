"""A fake Cloudflare API for `httpx.MockTransport`, and the small doubles targets need."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from rotator.secret import Secret

TOKEN = "cf-test-token-0123456789"
BASE = "https://cf.test/client/v4"
ACCOUNT = "acc"


class FakeCredentials:
    def __init__(self, values: dict[str, str] | None = None) -> None:
        self.values = values if values is not None else {"cloudflare_api_token": TOKEN}

    def secret(self, name: str) -> Secret:
        return Secret(self.values[name])

    def path(self, name: str) -> Path:
        raise AssertionError("targets never ask for a credential file")


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def envelope(result: Any = None, *, status: int = 200, errors: Any = (), **headers: str) -> Any:
    body = {
        "success": not errors and status < 400,
        "errors": [{"code": c, "message": m} for c, m in errors],
        "messages": [],
        "result": result,
    }
    return httpx.Response(status, json=body, headers=headers)


@dataclass
class Deployment:
    id: str
    environment: str
    created_on: str
    # How many polls it stays in the build stage before reaching its outcome.
    polls_left: int = 0
    outcome: str = "success"
    fail_stage: str = "deploy"
    branch: str = "main"
    commit: str = "c0ffee"

    def as_json(self) -> dict[str, Any]:
        names = ["queued", "initialize", "clone_repo", "build", "deploy"]
        if self.polls_left > 0:
            current, status = "build", "active"
        elif self.outcome == "success":
            current, status = "deploy", "success"
        else:
            current, status = self.fail_stage, self.outcome
        stages = []
        reached = False
        for name in names:
            if name == current:
                stages.append({"name": name, "status": status})
                reached = True
            else:
                stages.append({"name": name, "status": "idle" if reached else "success"})
        return {
            "id": self.id,
            "environment": self.environment,
            "created_on": self.created_on,
            "deployment_trigger": {
                "type": "push",
                "metadata": {"branch": self.branch, "commit_hash": self.commit},
            },
            "stages": stages,
            "latest_stage": {"name": current, "status": status},
        }


@dataclass
class FakeCloudflare:
    """Answer the Workers secrets and Pages project paths the targets use."""

    scripts: dict[str, dict[str, str]] = field(default_factory=lambda: {"app-staging": {}})
    projects: dict[str, dict[str, dict[str, Any]]] = field(
        default_factory=lambda: {"shop": {"production": {}, "preview": {}}}
    )
    deployments: list[Deployment] = field(
        default_factory=lambda: [
            Deployment("dep-old-preview", "preview", "2025-01-01T10:00:00Z", branch="staging"),
            Deployment("dep-preview", "preview", "2025-03-01T10:00:00Z", branch="staging"),
            Deployment("dep-prod", "production", "2025-03-02T10:00:00Z"),
        ]
    )
    requests: list[httpx.Request] = field(default_factory=list)
    # Answers served before normal handling, one per request, for fault injection.
    queued: list[httpx.Response] = field(default_factory=list)
    # The script a PUT really lands on, to play the "wrong script" outage.
    redirect_puts_to: str | None = None
    # The production deployment serving visitors; None: the newest successful one.
    canonical: str | None = None
    new_deployment_polls: int = 1
    new_deployment_outcome: str = "success"
    new_deployment_fail_stage: str = "deploy"
    hook: Callable[[httpx.Request], httpx.Response | None] | None = None

    def bodies(self, method: str, pattern: str = "") -> list[Any]:
        return [
            json.loads(r.content) if r.content else None
            for r in self.requests
            if r.method == method and re.search(pattern, r.url.path)
        ]

    def count(self, method: str, pattern: str) -> int:
        return sum(
            1 for r in self.requests if r.method == method and re.search(pattern, r.url.path)
        )

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.queued:
            return self.queued.pop(0)
        if self.hook is not None:
            answer = self.hook(request)
            if answer is not None:
                return answer
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return envelope(status=403, errors=[(10000, "Authentication error")])
        path = request.url.path.removeprefix("/client/v4")
        if m := re.fullmatch(rf"/accounts/{ACCOUNT}/workers/scripts/([^/]+)/secrets(-bulk)?", path):
            return self._secrets(request, m[1])
        if m := re.fullmatch(rf"/accounts/{ACCOUNT}/workers/scripts/([^/]+)/settings", path):
            return envelope({"bindings": []})
        if m := re.fullmatch(rf"/accounts/{ACCOUNT}/pages/projects/([^/]+)(/.*)?", path):
            return self._pages(request, m[1], m[2] or "")
        return envelope(status=404, errors=[(7003, "No route for the URI")])

    def _secrets(self, request: httpx.Request, script: str) -> httpx.Response:
        if script not in self.scripts:
            return envelope(status=404, errors=[(10007, "This Worker does not exist")])
        if request.method == "PUT":
            body = json.loads(request.content)
            landed = self.redirect_puts_to or script
            self.scripts.setdefault(landed, {})[body["name"]] = body["text"]
            return envelope({"name": body["name"], "type": body["type"]})
        if request.method == "PATCH":
            landed = self.redirect_puts_to or script
            for name, body in json.loads(request.content)["secrets"].items():
                self.scripts.setdefault(landed, {})[name] = body["text"]
            return envelope([{"name": n, "type": "secret_text"} for n in self.scripts[landed]])
        return envelope([{"name": n, "type": "secret_text"} for n in self.scripts[script]])

    def _pages(self, request: httpx.Request, project: str, rest: str) -> httpx.Response:
        if project not in self.projects:
            return envelope(status=404, errors=[(8000007, "Project not found")])
        configs = self.projects[project]
        if rest == "" and request.method == "GET":
            live = [d for d in self.deployments if d.environment == "production"]
            chosen = next((d for d in live if d.id == self.canonical), live[-1] if live else None)
            masked = {
                name: {"env_vars": {k: {"type": v["type"], "value": ""} for k, v in c.items()}}
                for name, c in configs.items()
            }
            return envelope(
                {
                    "name": project,
                    "deployment_configs": masked,
                    "canonical_deployment": chosen.as_json() if chosen else None,
                }
            )
        if rest == "" and request.method == "PATCH":
            body = json.loads(request.content)
            for name, config in body["deployment_configs"].items():
                configs[name].update(config["env_vars"])
            masked = {
                name: {"env_vars": {k: {"type": v["type"], "value": ""} for k, v in c.items()}}
                for name, c in configs.items()
            }
            return envelope({"name": project, "deployment_configs": masked})
        if rest == "/deployments" and request.method == "GET":
            env = request.url.params.get("env")
            listed = [d for d in self.deployments if env is None or d.environment == env]
            listed.sort(key=lambda d: d.created_on, reverse=True)
            return envelope([d.as_json() for d in listed])
        if m := re.fullmatch(r"/deployments/([^/]+)(/retry)?", rest):
            found = next((d for d in self.deployments if d.id == m[1]), None)
            if found is None:
                return envelope(status=404, errors=[(8000009, "Deployment not found")])
            if m[2] and request.method == "POST":
                new = Deployment(
                    f"dep-new-{len(self.deployments)}",
                    found.environment,
                    "2025-04-01T10:00:00Z",
                    branch=found.branch,
                    commit=found.commit,
                    polls_left=self.new_deployment_polls,
                    outcome=self.new_deployment_outcome,
                    fail_stage=self.new_deployment_fail_stage,
                )
                self.deployments.append(new)
                return envelope(new.as_json())
            answer = found.as_json()
            found.polls_left = max(0, found.polls_left - 1)
            return envelope(answer)
        return envelope(status=404, errors=[(7003, "No route for the URI")])


URLS = {"base_url": BASE}
