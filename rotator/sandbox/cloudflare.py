"""Emulate Cloudflare Workers secrets and Pages projects under `/cloudflare/client/v4`.

Workers: a secret put, delete or bulk patch makes one new version and deploys it at once;
a script in a gradual deployment (two versions sharing traffic) refuses every secret
change with error 10215, and a name bound as a plain `vars` variable cannot become a
secret (error 10053, a guess at the code: see docs/contracts.md). Pages: a PATCH only
changes the project's settings; values reach an environment when a deployment of it
succeeds, and a deployment moves one stage per poll (queued, initialize, clone_repo,
build, deploy), so a client must poll it as it would poll Cloudflare. Production is
served by the `canonical_deployment`, which a rollback moves back to an older build;
each preview branch is served by its own newest successful build. Secret values are
never returned.
"""

from __future__ import annotations

import copy
import secrets
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rotator.sandbox.routing import Family, Reply, Request, Route, route

if TYPE_CHECKING:
    from rotator.sandbox.world import World

STAGES = ("queued", "initialize", "clone_repo", "build", "deploy")
CONFIGS = ("preview", "production")
ENV_VAR_TYPES = ("plain_text", "secret_text")
RATE_LIMIT_CODE = 971
NOT_FULLY_DEPLOYED = 10215
BINDING_CLASH = 10053
BULK_LIMIT = 100
_CODES = {400: 10001, 401: 10000, 403: 10000, 404: 7003, 405: 10405, 429: RATE_LIMIT_CODE}


def envelope(result: Any, **extra: Any) -> dict[str, Any]:
    return {"success": True, "errors": [], "messages": [], "result": result, **extra}


def cloudflare_error(status: int, message: str, code: int | None = None) -> Reply:
    code = code or _CODES.get(status, 10002 if status >= 500 else 10001)
    payload = {
        "success": False,
        "errors": [{"code": code, "message": message}],
        "messages": [],
        "result": None,
    }
    return Reply.json(status, payload)


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class WorkersVersion:
    id: str
    number: int
    created: datetime


@dataclass
class WorkersScript:
    """A Worker: its secrets (as of its latest version), plain vars, versions, deployment."""

    name: str
    secrets: dict[str, tuple[str, str]] = field(default_factory=dict)
    version: int = 1
    vars: dict[str, str] = field(default_factory=dict)
    versions: list[WorkersVersion] = field(default_factory=list)
    # (version id, percentage) of the deployment serving traffic now.
    split: list[tuple[str, int]] = field(default_factory=list)
    # How many times each secret was written (a put, or an entry of a bulk patch).
    writes: Counter[str] = field(default_factory=Counter)

    def new_version(self, now: datetime, *, deploy: bool = True) -> WorkersVersion:
        """Record a new version; deploy it to 100 % unless it is only uploaded."""
        self.version += 1
        made = WorkersVersion(str(uuid.uuid4()), self.version, now)
        self.versions.append(made)
        if deploy:
            self.split = [(made.id, 100)]
        return made

    def start_gradual(self, now: datetime, percentage: int = 10) -> WorkersVersion:
        """Upload a version and send `percentage` of traffic to it (wrangler versions deploy)."""
        if not self.versions:
            self.new_version(now)
        current = self.versions[-1]
        made = self.new_version(now, deploy=False)
        self.split = [(made.id, percentage), (current.id, 100 - percentage)]
        return made

    @property
    def fully_deployed(self) -> bool:
        latest = self.versions[-1].id if self.versions else None
        return latest is None or self.split == [(latest, 100)]


@dataclass
class PagesDeployment:
    """One build of a Pages environment, holding the variables it was built with."""

    id: str
    project: str
    environment: str
    env_vars: dict[str, dict[str, Any]]
    created: datetime
    trigger: dict[str, Any]
    fails: bool = False
    step: int = 0
    stage_times: list[datetime] = field(default_factory=list)
    skipped: bool = False

    @property
    def branch(self) -> str | None:
        branch = (self.trigger.get("metadata") or {}).get("branch")
        return branch if isinstance(branch, str) else None

    @property
    def finished(self) -> bool:
        return self.step >= len(STAGES)

    @property
    def succeeded(self) -> bool:
        return self.finished and not self.fails

    def advance(self, now: datetime) -> bool:
        """Move one stage on; return True when that finished the deployment."""
        if self.finished:
            return False
        self.step += 1
        self.stage_times.append(now)
        return self.finished

    def _stage(self, index: int) -> dict[str, Any]:
        started = self.created if index == 0 else None
        if 0 < index <= len(self.stage_times):
            started = self.stage_times[index - 1]
        ended = self.stage_times[index] if index < len(self.stage_times) else None
        if index < self.step:
            status = "failure" if self.fails and index == len(STAGES) - 1 else "success"
        elif index == self.step:
            status = "active"
        else:
            status = "idle"
        return {
            "name": STAGES[index],
            "status": status,
            "started_on": _stamp(started) if started and status != "idle" else None,
            "ended_on": _stamp(ended) if ended else None,
        }

    def view(self) -> dict[str, Any]:
        stages = [self._stage(i) for i in range(len(STAGES))]
        short_id = self.id[:8]
        modified = self.stage_times[-1] if self.stage_times else self.created
        return {
            "id": self.id,
            "short_id": short_id,
            "project_id": self.project,
            "project_name": self.project,
            "environment": self.environment,
            "url": f"https://{short_id}.{self.project}.pages.dev",
            "aliases": None,
            "created_on": _stamp(self.created),
            "modified_on": _stamp(modified),
            "is_skipped": self.skipped,
            "deployment_trigger": self.trigger,
            "env_vars": _masked(self.env_vars),
            "latest_stage": stages[min(self.step, len(STAGES) - 1)],
            "stages": stages,
        }


def _masked(env_vars: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Hide secret_text values, as Cloudflare does in every answer."""
    shown: dict[str, Any] = {}
    for name, var in env_vars.items():
        if var.get("type") == "secret_text":
            shown[name] = {"type": "secret_text", "value": ""}
        else:
            shown[name] = dict(var)
    return shown


@dataclass
class PagesProject:
    name: str
    created: datetime
    production_branch: str = "main"
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    deployment_configs: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {config: {"env_vars": {}} for config in CONFIGS}
    )
    deployments: list[PagesDeployment] = field(default_factory=list)
    canonical_id: str | None = None

    def deploy(
        self, environment: str, now: datetime, trigger: dict[str, Any], *, fails: bool = False
    ) -> PagesDeployment:
        env_vars = copy.deepcopy(self.deployment_configs[environment].get("env_vars") or {})
        deployment = PagesDeployment(
            str(uuid.uuid4()), self.name, environment, env_vars, now, trigger, fails
        )
        self.deployments.append(deployment)
        return deployment

    def settle(self, deployment: PagesDeployment) -> None:
        """A production build that succeeded becomes the one serving visitors."""
        if deployment.environment == "production" and deployment.succeeded:
            self.canonical_id = deployment.id

    def push(
        self,
        environment: str,
        branch: str,
        commit: str,
        now: datetime,
        *,
        fails: bool = False,
        skipped: bool = False,
    ) -> PagesDeployment:
        """Build `commit` of `branch` to the end, as a git push would (tests and seeding)."""
        trigger = {
            "type": "push",
            "metadata": {"branch": branch, "commit_hash": commit, "commit_message": "push"},
        }
        deployment = self.deploy(environment, now, trigger, fails=fails)
        deployment.skipped = skipped
        if skipped:
            deployment.fails = True
        while not deployment.finished:
            deployment.advance(now)
        self.settle(deployment)
        return deployment

    def live_deployment(
        self, environment: str, branch: str | None = None
    ) -> PagesDeployment | None:
        """Return the deployment serving that environment (and preview branch)."""
        if environment == "production":
            return next((d for d in self.deployments if d.id == self.canonical_id), None)
        done = [
            d
            for d in self.deployments
            if d.environment == environment
            and d.succeeded
            and not d.skipped
            and branch in (None, d.branch)
        ]
        return done[-1] if done else None

    def view(self) -> dict[str, Any]:
        configs = {
            name: {**config, "env_vars": _masked(config.get("env_vars") or {})}
            for name, config in self.deployment_configs.items()
        }
        latest = self.deployments[-1].view() if self.deployments else None
        canonical = self.live_deployment("production")
        return {
            "id": self.id,
            "name": self.name,
            "subdomain": f"{self.name}.pages.dev",
            "domains": [f"{self.name}.pages.dev"],
            "production_branch": self.production_branch,
            "created_on": _stamp(self.created),
            "deployment_configs": configs,
            "latest_deployment": latest,
            "canonical_deployment": canonical.view() if canonical else None,
            "source": {"type": "github", "config": {"repo_name": self.name}},
        }


BUDGET = 1200
BUDGET_WINDOW = 300.0


@dataclass
class ApiToken:
    """A user API token; `rotator/sandbox/cloudflare_tokens.py` serves `/user/tokens`."""

    id: str
    name: str
    value: str
    policies: list[dict[str, Any]]
    issued_on: str = ""
    status: str = "active"


@dataclass
class CloudflareAccount:
    account_id: str
    api_token: str = field(default_factory=lambda: secrets.token_urlsafe(30))
    scripts: dict[str, WorkersScript] = field(default_factory=dict)
    projects: dict[str, PagesProject] = field(default_factory=dict)
    spent: list[datetime] = field(default_factory=list)
    # Every API token of the user, by id; the seeded `api_token` is the first.
    tokens: dict[str, ApiToken] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.tokens:
            from rotator.sandbox.cloudflare_tokens import seed_token

            seed_token(self)

    def token_for(self, value: str) -> ApiToken | None:
        """Return the active token with this value; a rolled or deleted value is refused."""
        for token in self.tokens.values():
            if token.status == "active" and secrets.compare_digest(token.value, value):
                return token
        return None

    def spend(self, now: datetime) -> str:
        """Count one request against the 5-minute budget; return its `Ratelimit` header."""
        self.spent = [t for t in self.spent if (now - t).total_seconds() < BUDGET_WINDOW]
        self.spent.append(now)
        reset = BUDGET_WINDOW - (now - self.spent[0]).total_seconds()
        remaining = max(0, BUDGET - len(self.spent))
        return f'"default";r={remaining};t={max(1, round(reset))}'


def _authorise(world: World, request: Request) -> Reply | None:
    token = request.bearer()
    account = world.cloudflare
    if token is None or account.token_for(token) is None:
        return cloudflare_error(403, "Authentication error", 10000)
    if request.params.get("account") != account.account_id:
        # Cloudflare does not tell a token apart from an account it cannot reach.
        return cloudflare_error(403, "Authentication error", 10000)
    return None


def _script(world: World, request: Request) -> WorkersScript | Reply:
    refused = _authorise(world, request)
    if refused is not None:
        return refused
    script = world.cloudflare.scripts.get(request.params["script"])
    if script is None:
        return cloudflare_error(404, "workers.api.error.script_not_found", 10007)
    return script


def _refuse_change(script: WorkersScript, names: list[str]) -> Reply | None:
    """Refuse a secret change the way Cloudflare does: a gradual rollout, a vars clash."""
    if not script.fully_deployed:
        return cloudflare_error(
            400,
            "You attempted to modify a secret, but the latest version of your Worker isn't "
            "currently deployed. Please ensure that the latest version of your Worker is fully "
            "deployed (wrangler versions deploy) before updating secrets.",
            NOT_FULLY_DEPLOYED,
        )
    clash = sorted(set(names) & set(script.vars))
    if clash:
        return cloudflare_error(400, f"Binding name '{clash[0]}' already in use", BINDING_CLASH)
    return None


def _secret_problem(name: Any, body: Any) -> Reply | None:
    if not isinstance(name, str) or not name:
        return cloudflare_error(400, "A secret needs a name.", 10021)
    if not isinstance(body, dict):
        return cloudflare_error(400, f"secret {name!r} must be an object or null", 10021)
    if body.get("type") != "secret_text":
        return cloudflare_error(400, "The sandbox stores only secret_text secrets.", 10021)
    if body.get("name", name) != name:
        return cloudflare_error(400, f"secret {name!r} carries another name", 10021)
    if not isinstance(body.get("text"), str):
        return cloudflare_error(400, "A secret_text secret needs a text value.", 10021)
    return None


def _put_secret(world: World, request: Request) -> Reply:
    script = _script(world, request)
    if isinstance(script, Reply):
        return script
    body = request.json_object()
    name = body.get("name")
    problem = _secret_problem(name, body) or _refuse_change(script, [str(name)])
    if problem is not None:
        return problem
    script.secrets[str(name)] = ("secret_text", str(body["text"]))
    script.writes[str(name)] += 1
    script.new_version(world.now())
    world.mark_changed()
    return Reply.json(200, envelope({"name": name, "type": "secret_text"}))


def _bulk_secrets(world: World, request: Request) -> Reply:
    """Apply a JSON Merge Patch of secrets as one version (PATCH .../secrets-bulk)."""
    script = _script(world, request)
    if isinstance(script, Reply):
        return script
    changes = request.json_object().get("secrets")
    if not isinstance(changes, dict) or not changes:
        return cloudflare_error(400, "secrets must be a non-empty object", 10021)
    if len(changes) > BULK_LIMIT:
        return cloudflare_error(400, f"at most {BULK_LIMIT} operations per request", 10021)
    for name, body in changes.items():
        problem = None if body is None else _secret_problem(name, body)
        if problem is not None:
            return problem
    refused = _refuse_change(script, [n for n, b in changes.items() if b is not None])
    if refused is not None:
        return refused
    for name, body in changes.items():
        if body is None:
            script.secrets.pop(name, None)
        else:
            script.secrets[name] = ("secret_text", body["text"])
            script.writes[name] += 1
    script.new_version(world.now())
    world.mark_changed()
    listed = [{"name": name, "type": kind} for name, (kind, _) in sorted(script.secrets.items())]
    return Reply.json(200, envelope(listed))


def _get_settings(world: World, request: Request) -> Reply:
    script = _script(world, request)
    if isinstance(script, Reply):
        return script
    bindings: list[dict[str, Any]] = [
        {"type": "plain_text", "name": name, "text": text} for name, text in script.vars.items()
    ]
    bindings += [{"type": kind, "name": name} for name, (kind, _) in script.secrets.items()]
    settings = {"bindings": bindings, "compatibility_date": "2026-01-01", "logpush": False}
    return Reply.json(200, envelope(settings))


def _list_versions(world: World, request: Request) -> Reply:
    script = _script(world, request)
    if isinstance(script, Reply):
        return script
    items = [
        {"id": v.id, "number": v.number, "metadata": {"created_on": _stamp(v.created)}}
        for v in reversed(script.versions)
    ]
    return Reply.json(200, envelope({"items": items}))


def _list_script_deployments(world: World, request: Request) -> Reply:
    script = _script(world, request)
    if isinstance(script, Reply):
        return script
    deployments = []
    if script.split:
        deployments.append(
            {
                "id": f"deployment-{script.version}",
                "source": "api",
                "strategy": "percentage",
                "versions": [{"version_id": v, "percentage": p} for v, p in script.split],
            }
        )
    return Reply.json(200, envelope({"deployments": deployments}))


def _create_script_deployment(world: World, request: Request) -> Reply:
    """Deploy versions by percentage, as `wrangler versions deploy` does."""
    script = _script(world, request)
    if isinstance(script, Reply):
        return script
    body = request.json_object()
    versions = body.get("versions")
    known = {v.id for v in script.versions}
    split: list[tuple[str, int]] = []
    for item in versions if isinstance(versions, list) else []:
        if not isinstance(item, dict) or item.get("version_id") not in known:
            return cloudflare_error(400, "unknown version_id", 10001)
        split.append((str(item["version_id"]), int(item.get("percentage", 0))))
    if not split or sum(p for _, p in split) != 100:
        return cloudflare_error(400, "percentages must add up to 100", 10001)
    script.split = split
    world.mark_changed()
    return Reply.json(
        200, envelope({"id": f"deployment-{script.version}", "strategy": "percentage"})
    )


def _list_secrets(world: World, request: Request) -> Reply:
    script = _script(world, request)
    if isinstance(script, Reply):
        return script
    listed = [{"name": name, "type": kind} for name, (kind, _) in sorted(script.secrets.items())]
    return Reply.json(200, envelope(listed))


def _get_secret(world: World, request: Request) -> Reply:
    script = _script(world, request)
    if isinstance(script, Reply):
        return script
    found = script.secrets.get(request.params["name"])
    if found is None:
        return cloudflare_error(404, "workers.api.error.secret_not_found", 10056)
    return Reply.json(200, envelope({"name": request.params["name"], "type": found[0]}))


def _delete_secret(world: World, request: Request) -> Reply:
    script = _script(world, request)
    if isinstance(script, Reply):
        return script
    refused = _refuse_change(script, [])
    if refused is not None:
        return refused
    if script.secrets.pop(request.params["name"], None) is None:
        return cloudflare_error(404, "workers.api.error.secret_not_found", 10056)
    script.new_version(world.now())
    world.mark_changed()
    return Reply.json(200, envelope(None))


def _project(world: World, request: Request) -> PagesProject | Reply:
    refused = _authorise(world, request)
    if refused is not None:
        return refused
    project = world.cloudflare.projects.get(request.params["project"])
    if project is None:
        return cloudflare_error(
            404,
            "Project not found. The specified project name does not match any of your "
            "existing projects.",
            8000007,
        )
    return project


def _get_project(world: World, request: Request) -> Reply:
    project = _project(world, request)
    if isinstance(project, Reply):
        return project
    return Reply.json(200, envelope(project.view()))


def _merge_env_vars(current: dict[str, Any], changes: dict[str, Any]) -> str | None:
    """Apply a PATCH's env_vars per key (`null` deletes); return a problem, or None."""
    for name, var in changes.items():
        if var is None:
            continue
        if not isinstance(var, dict) or var.get("type", "plain_text") not in ENV_VAR_TYPES:
            return f"env var {name!r} needs a type of plain_text or secret_text"
        if not isinstance(var.get("value"), str):
            return f"env var {name!r} needs a string value"
    for name, var in changes.items():
        if var is None:
            current.pop(name, None)
        else:
            current[name] = {"type": var.get("type", "plain_text"), "value": var["value"]}
    return None


def _patch_project(world: World, request: Request) -> Reply:
    project = _project(world, request)
    if isinstance(project, Reply):
        return project
    configs = request.json_object().get("deployment_configs") or {}
    if not isinstance(configs, dict) or not set(configs) <= set(CONFIGS):
        return cloudflare_error(400, "deployment_configs has only preview and production", 8000000)
    for config_name, changes in configs.items():
        if not isinstance(changes, dict):
            return cloudflare_error(400, f"deployment_configs.{config_name} must be an object")
        config = project.deployment_configs[config_name]
        env_changes = changes.get("env_vars")
        if env_changes is not None:
            if not isinstance(env_changes, dict):
                return cloudflare_error(400, "env_vars must be an object", 8000000)
            problem = _merge_env_vars(config.setdefault("env_vars", {}), env_changes)
            if problem:
                return cloudflare_error(400, problem, 8000000)
        config.update({k: v for k, v in changes.items() if k != "env_vars"})
    world.mark_changed()
    return Reply.json(200, envelope(project.view()))


def _list_deployments(world: World, request: Request) -> Reply:
    project = _project(world, request)
    if isinstance(project, Reply):
        return project
    wanted = request.query.get("env")
    if wanted is not None and wanted not in CONFIGS:
        return cloudflare_error(400, "env is production or preview", 8000000)
    chosen = [d for d in reversed(project.deployments) if wanted in (None, d.environment)]
    page_text, size_text = request.query.get("page", "1"), request.query.get("per_page", "25")
    if not page_text.isdigit() or not size_text.isdigit() or int(page_text) < 1:
        return cloudflare_error(400, "page and per_page must be positive numbers", 8000000)
    page, size = int(page_text), max(1, min(int(size_text), 100))
    shown = chosen[(page - 1) * size : page * size]
    info = {
        "page": page,
        "per_page": size,
        "count": len(shown),
        "total_count": len(chosen),
        "total_pages": max(1, -(-len(chosen) // size)),
    }
    return Reply.json(200, envelope([d.view() for d in shown], result_info=info))


def _deployment(world: World, request: Request) -> PagesDeployment | Reply:
    project = _project(world, request)
    if isinstance(project, Reply):
        return project
    found = next((d for d in project.deployments if d.id == request.params["deployment"]), None)
    if found is None:
        return cloudflare_error(404, "Deployment not found.", 8000009)
    return found


def _get_deployment(world: World, request: Request) -> Reply:
    deployment = _deployment(world, request)
    if isinstance(deployment, Reply):
        return deployment
    if deployment.advance(world.now()):
        world.cloudflare.projects[deployment.project].settle(deployment)
        world.mark_changed()
    return Reply.json(200, envelope(deployment.view()))


def _rollback_deployment(world: World, request: Request) -> Reply:
    """Serve an older successful production build again (the dashboard's rollback)."""
    target = _deployment(world, request)
    if isinstance(target, Reply):
        return target
    request.json_object()
    if target.environment != "production" or not target.succeeded:
        return cloudflare_error(
            400, "You can only rollback to successful builds on production.", 8000000
        )
    world.cloudflare.projects[target.project].canonical_id = target.id
    world.mark_changed()
    return Reply.json(200, envelope(target.view()))


def _retry_deployment(world: World, request: Request) -> Reply:
    original = _deployment(world, request)
    if isinstance(original, Reply):
        return original
    request.json_object()
    project = world.cloudflare.projects[original.project]
    fresh = project.deploy(
        original.environment,
        world.now(),
        copy.deepcopy(original.trigger),
        fails=world.profile.pages_deploy_fails,
    )
    world.mark_changed()
    return Reply.json(200, envelope(fresh.view()))


FAMILY = Family(
    "cloudflare",
    "/cloudflare/client/v4",
    cloudflare_error,
    extra_headers={
        "ratelimit-policy": '"default";q=1200;w=300',
    },
)

_ACCOUNT = "/cloudflare/client/v4/accounts/{account}"
_WORKER = _ACCOUNT + "/workers/scripts/{script}"
_SCRIPT = _WORKER + "/secrets"
_PROJECT = _ACCOUNT + "/pages/projects/{project}"
ROUTES: list[Route] = [
    route("PATCH", _WORKER + "/secrets-bulk", _bulk_secrets),
    route("GET", _WORKER + "/settings", _get_settings),
    route("GET", _WORKER + "/versions", _list_versions),
    route("GET", _WORKER + "/deployments", _list_script_deployments),
    route("POST", _WORKER + "/deployments", _create_script_deployment),
    route("POST", _PROJECT + "/deployments/{deployment}/rollback", _rollback_deployment),
    route("PUT", _SCRIPT, _put_secret),
    route("GET", _SCRIPT, _list_secrets),
    route("GET", _SCRIPT + "/{name}", _get_secret),
    route("DELETE", _SCRIPT + "/{name}", _delete_secret),
    route("GET", _PROJECT, _get_project),
    route("PATCH", _PROJECT, _patch_project),
    route("GET", _PROJECT + "/deployments", _list_deployments),
    route("GET", _PROJECT + "/deployments/{deployment}", _get_deployment),
    route("POST", _PROJECT + "/deployments/{deployment}/retry", _retry_deployment),
]
