"""Publish values as `secret_text` variables of a Cloudflare Pages project, then redeploy.

`publish` sends `PATCH /accounts/{a}/pages/projects/{p}` with only the changed variables
of one deployment config (`production` or `preview`): the PATCH merges per key, and a
variable left out is left alone. Only variables the config already holds are set, unless
the `variables` option names them (a publish never adds a secret silently).

A Pages deployment reads its variables when it is built, so nothing changes for visitors
until `finish` retries a deployment and polls it until its deploy stage succeeds. Which
one matters (docs/contracts.md, Pages): for production the project's
`canonical_deployment`, the one serving visitors (after a rollback it is not the
newest); for preview, where one config serves every preview branch, the newest
successful deployment of the `branch` option. Retrying anything else would publish a
stranger's branch or an abandoned commit. `finish` does that once per run and keeps, in
`report()`, which deployment it rebuilt and why.

Options: `account_id`, `project`, `deployment` (required); `branch` (required for
`preview`); `variables`; `redeploy_timeout` (seconds of polling before giving up with
`RetryLaterError`, default 900); `poll_interval`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from rotator.errors import RetryLaterError, TargetConfigError, TargetError
from rotator.secret import Secret
from rotator.targets.base import Target
from rotator.targets.cloudflare import (
    CloudflareApi,
    CloudflareError,
    check_variables,
    held_only,
    segment,
)

DEPLOYMENTS = ("production", "preview")
PROJECT_NOT_FOUND = 8000007
DEFAULT_REDEPLOY_TIMEOUT = 900.0
FIRST_POLL_DELAY = 2.0
MAX_POLL_DELAY = 30.0
FAILED = ("failure", "canceled")
PAGE_SIZE = 25
"""Cloudflare's default page of the deployment list."""
MAX_PAGES = 4


class PagesVariableTarget(Target):
    """Set Pages project variables of one deployment config; redeploy once per run."""

    kind: ClassVar[str] = "cloudflare-pages"
    required_options: ClassVar[Mapping[str, str]] = {
        "account_id": "the Cloudflare account id",
        "project": "the Pages project name",
        "deployment": "the deployment config to set: production or preview",
    }
    optional_options: ClassVar[Mapping[str, str]] = {
        "branch": "the preview branch this environment is built from (required for preview)",
        "variables": "the variables this config holds (default: those it holds already)",
        "redeploy_timeout": "seconds to wait for the redeploy (default 900)",
        "poll_interval": "seconds before the first poll of the redeploy, doubling (default 2)",
    }

    @classmethod
    def check_values(cls, options: Mapping[str, Any]) -> Iterable[str]:
        deployment = options.get("deployment")
        if isinstance(deployment, str) and deployment not in DEPLOYMENTS:
            yield f"deployment: must be production or preview, not {deployment!r}"
        branch = options.get("branch")
        if deployment == "preview" and branch is None:
            yield (
                'branch: required when deployment = "preview": one preview config serves '
                "every preview branch, so name the branch this environment is built from "
                '(e.g. branch = "staging")'
            )
        if branch is not None and (not isinstance(branch, str) or not branch.strip()):
            yield "branch: must be a non-empty string (a git branch name)"
        if deployment == "production" and branch is not None:
            yield (
                "branch: only for preview; production always rebuilds the live "
                "(canonical) deployment"
            )
        yield from check_variables(options)
        timeout = options.get("redeploy_timeout")
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
        ):
            yield "redeploy_timeout: must be a positive number of seconds"
        interval = options.get("poll_interval")
        if interval is not None and (
            isinstance(interval, bool) or not isinstance(interval, int | float) or interval <= 0
        ):
            yield "poll_interval: must be a positive number of seconds"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._needs_redeploy = False
        # A redeploy started but not yet seen to succeed; a later finish() polls it again.
        self._in_flight: str | None = None
        self._notes: list[str] = []

    @property
    def account_id(self) -> str:
        return str(self.options["account_id"])

    @property
    def project(self) -> str:
        return str(self.options["project"])

    @property
    def deployment(self) -> str:
        return str(self.options["deployment"])

    @property
    def redeploy_timeout(self) -> float:
        return float(self.options.get("redeploy_timeout", DEFAULT_REDEPLOY_TIMEOUT))

    @property
    def branch(self) -> str | None:
        branch = self.options.get("branch")
        return str(branch) if branch else None

    def describe(self) -> str:
        return f"{self.kind} {self.project} ({self.deployment})"

    def report(self) -> list[str]:
        """Return what this target did beyond setting values (the deployment it rebuilt)."""
        return list(self._notes)

    def _api(self) -> CloudflareApi:
        return CloudflareApi(
            self.http, self.credentials, self.urls, kind=self.kind, what=self.describe()
        )

    def _project_path(self) -> str:
        return f"/accounts/{segment(self.account_id)}/pages/projects/{segment(self.project)}"

    def publish(self, values: Mapping[str, Secret]) -> None:
        """Set only these variables of this deployment config; remember to redeploy."""
        values = self._held(values)
        if not values:
            return
        env_vars = {
            name: {"type": "secret_text", "value": value.reveal()} for name, value in values.items()
        }
        body = {"deployment_configs": {self.deployment: {"env_vars": env_vars}}}
        try:
            project = self._api().call(
                "PATCH",
                self._project_path(),
                operation="set project variables",
                idempotent=True,
                json=body,
                hide=values.values(),
            )
        except CloudflareError as exc:
            raise self._explain(exc) from None
        self._needs_redeploy = True
        self._in_flight = None
        self._check_listed(project, values)

    def _held(self, values: Mapping[str, Secret]) -> dict[str, Secret]:
        if not values:
            return {}
        declared = self.options.get("variables")
        if declared is not None:
            return held_only(values, declared, self._notes, self.describe())
        try:
            project = self._api().call(
                "GET", self._project_path(), operation="read project", idempotent=True
            )
        except CloudflareError as exc:
            raise self._explain(exc) from None
        return held_only(
            values, _config_vars(project, self.deployment), self._notes, self.describe()
        )

    def _check_listed(self, project: Any, values: Mapping[str, Secret]) -> None:
        # The answer is the project; when it shows the config's variables, every name set
        # must be among them, or the write went somewhere else.
        configs = project.get("deployment_configs") if isinstance(project, dict) else None
        config = configs.get(self.deployment) if isinstance(configs, dict) else None
        env_vars = config.get("env_vars") if isinstance(config, dict) else None
        if not isinstance(env_vars, dict):
            return
        missing = [name for name in values if name not in env_vars]
        if missing:
            raise TargetError(
                f"{self.describe()}: set {', '.join(missing)} but the project's "
                f"{self.deployment} config does not show it afterwards"
            )

    def finish(self) -> None:
        """Redeploy if anything was published, and wait until the deploy stage succeeds."""
        if self._needs_redeploy:
            self._in_flight = self._retry_live()
            self._needs_redeploy = False
        if self._in_flight is None:
            return
        try:
            self._wait_for(self._in_flight)
        except TargetError:
            # A failed build may be flaky; the next finish() starts a fresh redeploy.
            self._in_flight = None
            self._needs_redeploy = True
            raise
        self._in_flight = None

    def _retry_live(self) -> str:
        api = self._api()
        chosen = self._live_production(api) if self.deployment == "production" else None
        if chosen is None and self.deployment == "preview":
            chosen = self._newest_of_branch(api)
        if chosen is None and self.deployment == "production":
            raise TargetError(
                f"{self.describe()}: the project has no live production deployment "
                "(canonical_deployment) to rebuild; deploy it once (git push to the "
                "production branch or wrangler pages deploy), then run again"
            )
        if chosen is None:
            raise TargetError(
                f"{self.describe()}: no successful preview deployment of branch "
                f"{self.branch!r} to rebuild (failed, skipped and other branches' builds "
                f"are never rebuilt); push to {self.branch} or fix its build, check "
                f"environments.{self.environment}.targets branch, then run again"
            )
        # Not idempotent: a repeated retry would start a second build.
        new = api.call(
            "POST",
            f"{self._project_path()}/deployments/{segment(chosen.id)}/retry",
            operation="redeploy",
            idempotent=False,
            json={},
        )
        new_id = new.get("id") if isinstance(new, dict) else None
        if not isinstance(new_id, str) or not new_id:
            raise TargetError(f"{self.describe()}: the redeploy answer carries no deployment id")
        self._notes.append(
            f"{self.describe()}: rebuilt deployment {chosen.id} (branch {chosen.branch}, "
            f"commit {chosen.commit}) as {new_id}: {chosen.why}"
        )
        return new_id

    def _live_production(self, api: CloudflareApi) -> Chosen | None:
        try:
            project = api.call(
                "GET", self._project_path(), operation="read project", idempotent=True
            )
        except CloudflareError as exc:
            raise self._explain(exc) from None
        canonical = project.get("canonical_deployment") if isinstance(project, dict) else None
        if not isinstance(canonical, dict) or not isinstance(canonical.get("id"), str):
            return None
        return Chosen.of(canonical, "the live production deployment (canonical_deployment)")

    def _newest_of_branch(self, api: CloudflareApi) -> Chosen | None:
        path = f"{self._project_path()}/deployments"
        params = {"env": "preview"}
        for page in range(1, MAX_PAGES + 1):
            if page > 1:
                params = {"env": "preview", "page": str(page)}
            try:
                listed = api.call(
                    "GET", path, operation="list deployments", idempotent=True, params=params
                )
            except CloudflareError as exc:
                raise self._explain(exc) from None
            found = _newest_success(listed, str(self.branch))
            if found is not None:
                return Chosen.of(
                    found,
                    f"the newest successful preview deployment of branch {self.branch}",
                )
            if not isinstance(listed, list) or len(listed) < PAGE_SIZE:
                return None
        return None

    def _wait_for(self, deployment_id: str) -> None:
        api = self._api()
        path = f"{self._project_path()}/deployments/{segment(deployment_id)}"
        waited = 0.0
        delay = float(self.options.get("poll_interval", FIRST_POLL_DELAY))
        while True:
            found = api.call("GET", path, operation="poll deployment", idempotent=True)
            outcome, stage = _progress(found)
            if outcome == "success":
                return
            if outcome == "failed":
                raise TargetError(
                    f"Pages deployment {deployment_id} of {self.project} ({self.deployment}) "
                    f"failed at stage {stage}"
                )
            if waited >= self.redeploy_timeout:
                raise RetryLaterError(
                    f"Pages deployment {deployment_id} of {self.project} ({self.deployment}) "
                    f"is still at stage {stage} after {waited:.0f}s",
                    retry_after=MAX_POLL_DELAY,
                    provider=self.kind,
                    operation="redeploy",
                )
            step = min(delay, MAX_POLL_DELAY, self.redeploy_timeout - waited)
            # The client's sleep, so tests and the demo's simulated clock do not really wait.
            self.http.sleep(step)
            waited += step
            delay *= 2

    def _explain(self, exc: CloudflareError) -> TargetError:
        if exc.status == 404 or PROJECT_NOT_FOUND in exc.codes:
            return TargetConfigError(
                f"Pages project {self.project!r} was not found in Cloudflare account "
                f"{self.account_id}; check environments.{self.environment}.targets "
                "in the inventory"
            )
        return exc


@dataclass(frozen=True)
class Chosen:
    """The deployment `finish` rebuilds, and why that one."""

    id: str
    branch: str
    commit: str
    why: str

    @classmethod
    def of(cls, deployment: Mapping[str, Any], why: str) -> Chosen:
        branch, commit = _trigger(deployment)
        return cls(str(deployment["id"]), branch or "unknown", (commit or "unknown")[:12], why)


def _trigger(deployment: Mapping[str, Any]) -> tuple[str | None, str | None]:
    trigger = deployment.get("deployment_trigger")
    metadata = trigger.get("metadata") if isinstance(trigger, dict) else None
    if not isinstance(metadata, dict):
        return None, None
    branch, commit = metadata.get("branch"), metadata.get("commit_hash")
    return (
        branch if isinstance(branch, str) else None,
        commit if isinstance(commit, str) else None,
    )


def _newest_success(listed: Any, branch: str) -> dict[str, Any] | None:
    """Return the newest deployment of `branch` whose deploy stage succeeded."""
    if not isinstance(listed, list):
        return None
    candidates = [
        item
        for item in listed
        if isinstance(item, dict)
        and isinstance(item.get("id"), str)
        and item.get("environment", "preview") == "preview"
        and _trigger(item)[0] == branch
        and not item.get("is_skipped")
        and _progress(item)[0] == "success"
    ]
    if not candidates:
        return None
    try:
        return max(candidates, key=lambda item: datetime.fromisoformat(item["created_on"]))
    except (KeyError, TypeError, ValueError):
        # Cloudflare lists the newest first; the order is the fallback when dates are absent.
        return candidates[0]


def _config_vars(project: Any, deployment: str) -> set[str]:
    configs = project.get("deployment_configs") if isinstance(project, dict) else None
    config = configs.get(deployment) if isinstance(configs, dict) else None
    env_vars = config.get("env_vars") if isinstance(config, dict) else None
    return set(env_vars) if isinstance(env_vars, dict) else set()


def _progress(deployment: Any) -> tuple[str, str]:
    """Return ("success" | "failed" | "running", stage name) for a deployment answer."""
    if not isinstance(deployment, dict):
        return "running", "unknown"
    stages = [s for s in deployment.get("stages") or [] if isinstance(s, dict)]
    latest = deployment.get("latest_stage")
    if isinstance(latest, dict):
        stages.append(latest)
    for stage in stages:
        if stage.get("status") in FAILED:
            return "failed", str(stage.get("name", "unknown"))
    if any(s.get("name") == "deploy" and s.get("status") == "success" for s in stages):
        return "success", "deploy"
    name = latest.get("name") if isinstance(latest, dict) else None
    return "running", str(name or "unknown")
