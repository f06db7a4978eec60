"""Publish values as secrets of a Cloudflare Workers script.

`PUT /accounts/{account_id}/workers/scripts/{script}/secrets` creates and deploys a new
Worker version at once, so there is nothing to do in `finish`. Putting a secret on the
wrong script is the classic rotation outage (wrangler environments live in separate
scripts named `<name>-<env>`), so after writing, the target lists the script's secrets and
reports success only if every name it wrote is there.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from rotator.errors import TargetConfigError, TargetError
from rotator.secret import Secret
from rotator.targets.base import Target
from rotator.targets.cloudflare import CloudflareApi, CloudflareError, segment

SCRIPT_NOT_FOUND = 10007
NOT_FULLY_DEPLOYED = 10215


class WorkersSecretTarget(Target):
    """Put `secret_text` secrets on one Workers script and check they landed there."""

    kind: ClassVar[str] = "cloudflare-workers"
    required_options: ClassVar[Mapping[str, str]] = {
        "account_id": "the Cloudflare account id",
        "script": "the Worker script name, with its wrangler environment suffix "
        "(e.g. tasks-staging)",
    }

    @property
    def account_id(self) -> str:
        return str(self.options["account_id"])

    @property
    def script(self) -> str:
        return str(self.options["script"])

    def describe(self) -> str:
        return f"{self.kind} {self.script}"

    def _secrets_path(self) -> str:
        return (
            f"/accounts/{segment(self.account_id)}/workers/scripts/{segment(self.script)}/secrets"
        )

    def publish(self, values: Mapping[str, Secret]) -> None:
        """Put every value, then confirm the script lists every name."""
        if not values:
            return
        api = CloudflareApi(
            self.http, self.credentials, self.urls, kind=self.kind, what=self.describe()
        )
        for name, value in values.items():
            try:
                api.call(
                    "PUT",
                    self._secrets_path(),
                    operation=f"put secret {name}",
                    idempotent=True,
                    json={"name": name, "text": value.reveal(), "type": "secret_text"},
                    hide=[value],
                )
            except CloudflareError as exc:
                raise self._explain(exc) from None
        listed = api.call("GET", self._secrets_path(), operation="list secrets", idempotent=True)
        names = (
            {item.get("name") for item in listed if isinstance(item, dict)}
            if isinstance(listed, list)
            else set()
        )
        missing = [name for name in values if name not in names]
        if missing:
            raise TargetError(
                f"{self.describe()}: wrote {', '.join(missing)} but the script's secret list "
                f"in account {self.account_id} does not show "
                f"{'it' if len(missing) == 1 else 'them'}; check that "
                f"environments.{self.environment}.targets names the script the app runs as"
            )

    def _explain(self, exc: CloudflareError) -> TargetError:
        if SCRIPT_NOT_FOUND in exc.codes:
            return TargetConfigError(
                f"Worker script {self.script!r} was not found in Cloudflare account "
                f"{self.account_id} (error {SCRIPT_NOT_FOUND}); check "
                f"environments.{self.environment}.targets in the inventory: with wrangler "
                "environments the script name carries the environment suffix "
                "(e.g. tasks-staging)"
            )
        if NOT_FULLY_DEPLOYED in exc.codes:
            return TargetError(
                f"{self.describe()}: Cloudflare refused the secret because the latest version "
                f"of the Worker is not fully deployed (error {NOT_FULLY_DEPLOYED}); finish or "
                "roll back the gradual deployment, then run again"
            )
        return exc
