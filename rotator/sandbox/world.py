"""Hold everything the emulated providers know, behind one lock, on one clock."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime

from rotator.sandbox.assertion import ServiceAccount
from rotator.sandbox.cloudflare import CloudflareAccount
from rotator.sandbox.environments import (
    EnvironmentBinding,
    HealthRecord,
    failing_secrets,
)
from rotator.sandbox.faults import FaultInjector, FaultProfile
from rotator.sandbox.google_apikeys import ApiKeysService
from rotator.sandbox.google_oauth import GoogleAuth
from rotator.sandbox.observability import Observability
from rotator.sandbox.resend import ResendAccount
from rotator.sandbox.stripe import StripeAccount

GCP_PROJECT = "bandofbakers-prod"
GCP_PROJECT_NUMBER = "861234567890"
SERVICE_ACCOUNT = f"rotator@{GCP_PROJECT}.iam.gserviceaccount.com"


class World:
    """The state of every emulated provider; handlers run with `lock` held."""

    def __init__(
        self,
        clock: Callable[[], datetime],
        faults: FaultInjector,
        environments: Iterable[EnvironmentBinding],
        account_id: str,
    ) -> None:
        self.lock = threading.RLock()
        self.clock = clock
        self.faults = faults
        self.base_url = ""
        self.environments = {binding.name: binding for binding in environments}
        self.resend = ResendAccount()
        self.stripe = StripeAccount()
        self.google = GoogleAuth()
        self.apikeys = ApiKeysService(projects={GCP_PROJECT: GCP_PROJECT_NUMBER})
        self.cloudflare = CloudflareAccount(account_id)
        self.observability = Observability()
        self.requests: Counter[str] = Counter()
        self.history: list[HealthRecord] = []
        self._changed = False
        account = ServiceAccount.generate(SERVICE_ACCOUNT, GCP_PROJECT)
        self.google.accounts[account.client_email] = account

    @property
    def profile(self) -> FaultProfile:
        return self.faults.profile

    @property
    def service_account(self) -> ServiceAccount:
        return self.google.accounts[SERVICE_ACCOUNT]

    def now(self) -> datetime:
        return self.clock()

    def mark_changed(self) -> None:
        """Note that this request changed state, so health is recorded after it."""
        self._changed = True

    def record_health(self, cause: str) -> None:
        """Evaluate both environments; record them after a change, or when health moved.

        Health can move with no request changing anything (a Stripe key whose expiry
        takes effect later), so every request also checks, and records what it notices.
        """
        changed, self._changed = self._changed, False
        for binding in self.environments.values():
            failing = failing_secrets(self, binding)
            last = self.last_record(binding.name)
            if changed or last is None or last.failing != failing:
                reason = cause if changed else "observed"
                record = HealthRecord(self.now(), binding.name, not failing, failing, reason)
                self.history.append(record)

    def last_record(self, environment: str) -> HealthRecord | None:
        return next((r for r in reversed(self.history) if r.environment == environment), None)
