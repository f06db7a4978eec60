"""Publish values as `secret_text` variables of a Cloudflare Pages project, then redeploy.

`publish` sends `PATCH /accounts/{a}/pages/projects/{p}` with only the changed variables
of one deployment config (`production` or `preview`): the PATCH merges per key, and a
variable left out is left alone. A Pages deployment reads its variables when it is built,
so nothing changes for visitors until `finish` retries the latest deployment of that
config and polls it until its deploy stage succeeds. `finish` does that once, however
many publishes came before it in the run.

Options: `account_id`, `project`, `deployment` (required); `redeploy_timeout` (seconds
of polling before giving up with `RetryLaterError`, default 900).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, ClassVar

from rotator.errors import RetryLaterError, TargetConfigError, TargetError
from rotator.secret import Secret
from rotator.targets.base import Target
from rotator.targets.cloudflare import CloudflareApi, CloudflareError, segment

DEPLOYMENTS = ("production", "preview")
PROJECT_NOT_FOUND = 8000007
DEFAULT_REDEPLOY_TIMEOUT = 900.0
FIRST_POLL_DELAY = 2.0
MAX_POLL_DELAY = 30.0
FAILED = ("failure", "canceled")


class PagesVariableTarget(Target):
    """Set Pages project variables of one deployment config; redeploy once per run."""

    kind: ClassVar[str] = "cloudflare-pages"
    required_options: ClassVar[Mapping[str, str]] = {
        "account_id": "the Cloudflare account id",
        "project": "the Pages project name",
        "deployment": "the deployment config to set: production or preview",
    }
    optional_options: ClassVar[Mapping[str, str]] = {
        "redeploy_timeout": "seconds to wait for the redeploy (default 900)",
        "poll_interval": "seconds before the first poll of the redeploy, doubling (default 2)",
    }

    @classmethod
    def check_values(cls, options: Mapping[str, Any]) -> Iterable[str]:
        deployment = options.get("deployment")
        if isinstance(deployment, str) and deployment not in DEPLOYMENTS:
            yield f"deployment: must be production or preview, not {deployment!r}"
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

    def describe(self) -> str:
        return f"{self.kind} {self.project} ({self.deployment})"

    def _api(self) -> CloudflareApi:
        return CloudflareApi(
            self.http, self.credentials, self.urls, kind=self.kind, what=self.describe()
        )

    def _project_path(self) -> str:
        return f"/accounts/{segment(self.account_id)}/pages/projects/{segment(self.project)}"

    def publish(self, values: Mapping[str, Secret]) -> None:
        """Set only these variables of this deployment config; remember to redeploy."""
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
            self._in_flight = self._retry_latest()
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

    def _retry_latest(self) -> str:
        api = self._api()
        path = f"{self._project_path()}/deployments"
        try:
            listed = api.call(
                "GET",
                path,
                operation="list deployments",
                idempotent=True,
                params={"env": self.deployment},
            )
        except CloudflareError as exc:
            raise self._explain(exc) from None
        latest = _latest(listed, self.deployment)
        if latest is None:
            raise TargetError(
                f"{self.describe()}: the project has no {self.deployment} deployment to "
                "redeploy; deploy it once (git push or wrangler pages deploy), then run again"
            )
        # Not idempotent: a repeated retry would start a second build.
        new = api.call(
            "POST",
            f"{path}/{segment(latest)}/retry",
            operation="redeploy",
            idempotent=False,
            json={},
        )
        new_id = new.get("id") if isinstance(new, dict) else None
        if not isinstance(new_id, str) or not new_id:
            raise TargetError(f"{self.describe()}: the redeploy answer carries no deployment id")
        return new_id

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


def _latest(listed: Any, deployment: str) -> str | None:
    """Return the id of the newest deployment of `deployment` in a list answer."""
    if not isinstance(listed, list):
        return None
    candidates = [
        item
        for item in listed
        if isinstance(item, dict)
        and isinstance(item.get("id"), str)
        and item.get("environment", deployment) == deployment
    ]
    if not candidates:
        return None
    try:
        newest = max(candidates, key=lambda item: datetime.fromisoformat(item["created_on"]))
    except (KeyError, TypeError, ValueError):
        # Cloudflare lists the newest first; the order is the fallback when dates are absent.
        newest = candidates[0]
    return str(newest["id"])


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
