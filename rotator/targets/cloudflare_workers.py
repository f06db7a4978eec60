"""Publish values as secrets of a Cloudflare Workers script.

All changed secrets of one script go in one `PATCH .../workers/scripts/{script}/secrets-bulk`
(JSON Merge Patch: a named secret is created or replaced, one left out is left alone), so
Cloudflare makes and deploys one new version holding all of them, never a half-applied
set (docs/contracts.md, Workers). Putting a secret on the wrong script is the classic
rotation outage (wrangler environments live in separate scripts named `<name>-<env>`), so
after writing, the target lists the script's secrets and reports success only if every
name it wrote is there.

Only secrets the script already holds are set, unless the `variables` option names them: a
rotation never hands a Worker a credential it did not have. A name the Worker binds as a
plain `vars` variable is a clash a person resolves in `wrangler.toml`; a script in a
gradual deployment (error 10215) refuses every secret change until the rollout is
finished or rolled back. Both stop with the exact change or command to make.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from rotator.errors import TargetConfigError, TargetError
from rotator.secret import Secret
from rotator.targets.base import Target
from rotator.targets.cloudflare import (
    CloudflareApi,
    CloudflareError,
    check_variables,
    held_only,
    segment,
)

SCRIPT_NOT_FOUND = 10007
BINDING_CLASH = 10053
NOT_FULLY_DEPLOYED = 10215
BULK_LIMIT = 100
"""Operations one secrets-bulk request may carry (Cloudflare changelog 2026-06-03)."""


class WorkersSecretTarget(Target):
    """Put `secret_text` secrets on one Workers script and check they landed there."""

    kind: ClassVar[str] = "cloudflare-workers"
    required_options: ClassVar[Mapping[str, str]] = {
        "account_id": "the Cloudflare account id",
        "script": "the Worker script name, with its wrangler environment suffix "
        "(e.g. tasks-staging)",
    }
    optional_options: ClassVar[Mapping[str, str]] = {
        "variables": "the secrets this script holds (default: those it holds already)",
    }

    @classmethod
    def check_values(cls, options: Mapping[str, Any]) -> Iterable[str]:
        return check_variables(options)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._notes: list[str] = []

    @property
    def account_id(self) -> str:
        return str(self.options["account_id"])

    @property
    def script(self) -> str:
        return str(self.options["script"])

    def describe(self) -> str:
        return f"{self.kind} {self.script}"

    def report(self) -> list[str]:
        return list(self._notes)

    def _script_path(self) -> str:
        return f"/accounts/{segment(self.account_id)}/workers/scripts/{segment(self.script)}"

    def _api(self) -> CloudflareApi:
        return CloudflareApi(
            self.http, self.credentials, self.urls, kind=self.kind, what=self.describe()
        )

    def publish(self, values: Mapping[str, Secret]) -> None:
        """Put every value the script holds in one version, then confirm the list."""
        if not values:
            return
        api = self._api()
        declared = self.options.get("variables")
        if declared is not None:
            values = held_only(values, declared, self._notes, self.describe())
        else:
            before = self._listed(api)
            skipped = set(values) - before
            if skipped:
                self._refuse_vars_clash(api, skipped)
            values = held_only(values, before, self._notes, self.describe())
        if not values:
            return
        names = sorted(values)
        for start in range(0, len(names), BULK_LIMIT):
            chunk = names[start : start + BULK_LIMIT]
            secrets = {
                name: {"name": name, "type": "secret_text", "text": values[name].reveal()}
                for name in chunk
            }
            try:
                api.call(
                    "PATCH",
                    f"{self._script_path()}/secrets-bulk",
                    operation=f"put secrets {', '.join(chunk)}",
                    idempotent=True,
                    json={"secrets": secrets},
                    hide=[values[name] for name in chunk],
                )
            except CloudflareError as exc:
                raise self._explain(exc, api, chunk) from None
        after = self._listed(api)
        missing = [name for name in values if name not in after]
        if missing:
            raise TargetError(
                f"{self.describe()}: wrote {', '.join(missing)} but the script's secret list "
                f"in account {self.account_id} does not show "
                f"{'it' if len(missing) == 1 else 'them'}; check that "
                f"environments.{self.environment}.targets names the script the app runs as"
            )

    def _listed(self, api: CloudflareApi) -> set[str]:
        try:
            listed = api.call(
                "GET", f"{self._script_path()}/secrets", operation="list secrets", idempotent=True
            )
        except CloudflareError as exc:
            raise self._explain(exc, api, []) from None
        if not isinstance(listed, list):
            return set()
        return {str(item["name"]) for item in listed if isinstance(item, dict) and "name" in item}

    def _refuse_vars_clash(self, api: CloudflareApi, names: set[str]) -> None:
        """Stop if a name the script does not hold as a secret is one of its plain vars."""
        settings = api.call(
            "GET", f"{self._script_path()}/settings", operation="read settings", idempotent=True
        )
        bindings = settings.get("bindings") if isinstance(settings, dict) else None
        plain = {
            str(b.get("name"))
            for b in bindings or []
            if isinstance(b, dict) and b.get("type") in ("plain_text", "json")
        }
        clash = sorted(names & plain)
        if clash:
            raise self._clash(clash)

    def _clash(self, names: list[str]) -> TargetConfigError:
        listed = ", ".join(names)
        return TargetConfigError(
            f"{self.describe()}: {listed} is a plain variable of the Worker (a `vars` "
            "binding), so Cloudflare will not make it a secret and the app would keep "
            f"reading the old value. Remove {listed} from [vars] (and from every "
            f"[env.<name>.vars]) in the wrangler.toml of {self.script}, deploy "
            "(`npx wrangler deploy`), then run `rotate resume` for the secret"
        )

    def _explain(self, exc: CloudflareError, api: CloudflareApi, names: list[str]) -> TargetError:
        if SCRIPT_NOT_FOUND in exc.codes:
            return TargetConfigError(
                f"Worker script {self.script!r} was not found in Cloudflare account "
                f"{self.account_id} (error {SCRIPT_NOT_FOUND}); check "
                f"environments.{self.environment}.targets in the inventory: with wrangler "
                "environments the script name carries the environment suffix "
                "(e.g. tasks-staging)"
            )
        if BINDING_CLASH in exc.codes:
            return self._clash(names or ["a variable"])
        if NOT_FULLY_DEPLOYED in exc.codes:
            return self._gradual(api)
        return exc

    def _version_numbers(self, api: CloudflareApi) -> dict[str, float]:
        try:
            listed = api.call(
                "GET",
                f"{self._script_path()}/versions",
                operation="list versions",
                idempotent=True,
            )
        except TargetError:
            return {}
        return _numbers(listed)

    def _gradual(self, api: CloudflareApi) -> TargetError:
        """Explain error 10215 with the commands that end the gradual deployment."""
        split = ""
        finish = f"npx wrangler versions deploy <new-version-id>@100% --name {self.script} --yes"
        undo = f"npx wrangler versions deploy <old-version-id>@100% --name {self.script} --yes"
        try:
            listed = api.call(
                "GET",
                f"{self._script_path()}/deployments",
                operation="list deployments",
                idempotent=True,
            )
        except TargetError:
            listed = None
        versions = _current_split(listed)
        if len(versions) >= 2:
            numbers = self._version_numbers(api)
            # The version with the higher number is the one being rolled out.
            versions.sort(key=lambda pair: numbers.get(pair[0], 0.0), reverse=True)
            newest, oldest = versions[0][0], versions[-1][0]
            split = " (" + ", ".join(f"version {v} at {p:g}%" for v, p in versions) + ")"
            finish = f"npx wrangler versions deploy {newest}@100% --name {self.script} --yes"
            undo = f"npx wrangler versions deploy {oldest}@100% --name {self.script} --yes"
        return TargetConfigError(
            f"{self.describe()}: Cloudflare refuses secret changes while a gradual "
            f"deployment is in progress (error {NOT_FULLY_DEPLOYED}){split}. Nothing was "
            f"changed. Finish the rollout with `{finish}` or roll it back with `{undo}`, "
            "then run `rotate resume` for the secret"
        )


def _numbers(listed: Any) -> dict[str, float]:
    items = listed.get("items") if isinstance(listed, dict) else None
    numbers: dict[str, float] = {}
    for item in items or []:
        if isinstance(item, dict) and isinstance(item.get("id"), str):
            number = item.get("number")
            numbers[item["id"]] = float(number) if isinstance(number, int | float) else 0.0
    return numbers


def _current_split(listed: Any) -> list[tuple[str, float]]:
    """Return (version id, percentage) of the deployment serving now, newest version first."""
    deployments = listed.get("deployments") if isinstance(listed, dict) else None
    if not isinstance(deployments, list) or not deployments:
        return []
    # Cloudflare lists the deployment serving traffic first.
    current = deployments[0]
    versions = current.get("versions") if isinstance(current, dict) else None
    split: list[tuple[str, float]] = []
    for item in versions or []:
        if isinstance(item, dict) and isinstance(item.get("version_id"), str):
            percentage = item.get("percentage")
            share = float(percentage) if isinstance(percentage, int | float) else 0.0
            split.append((item["version_id"], share))
    return split
