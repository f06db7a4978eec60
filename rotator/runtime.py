"""Assemble what a command needs: inventory, store, keys, HTTP, plugins, actor and clock.

Everything is built lazily, so a command pays only for what it touches (`rotate status`
never loads httpx; `rotate check --offline` never opens the database).
"""

from __future__ import annotations

import getpass
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rotator import clock
from rotator.inventory import Inventory, SecretSpec

if TYPE_CHECKING:
    import httpx

    from providers.base import Provider, ProviderContext
    from providers.http import HttpClient
    from rotator.credentials import InventoryCredentials
    from rotator.keys import MasterKey
    from rotator.secret import Secret
    from rotator.store.db import Store
    from rotator.targets.base import Target


def default_actor() -> str:
    """Return `ROTATOR_ACTOR`, else `user@host`."""
    actor = os.environ.get("ROTATOR_ACTOR")
    if actor:
        return actor
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid{os.getuid()}"
    return f"{user}@{socket.gethostname()}"


def _runner_id() -> str:
    """Return this process's claimant name (host, boot, pid): see `repository.runner_id`."""
    from rotator.repository import runner_id

    return runner_id()


DEFAULT_LIMITS: dict[str, dict[str, float]] = {
    # Resend documents 2 (older docs) to 5 requests per second per team: take the lower.
    "resend": {"rate": 2.0, "concurrency": 2},
    # Stripe allows 100 read requests per second in live mode; stay well below.
    "stripe": {"rate": 25.0, "concurrency": 8},
    "gcp-identity": {"rate": 10.0, "concurrency": 8},
    "google-oauth": {"rate": 10.0, "concurrency": 8},
    # Cloudflare: 1,200 requests per 5 minutes per user (4/s), then a 5-minute block.
    # One budget for every Cloudflare target.
    "cloudflare": {"rate": 4.0, "concurrency": 4},
}
SHARED_LIMITS = {"cloudflare-workers": "cloudflare", "cloudflare-pages": "cloudflare"}
"""Per-provider request rate and concurrency when the inventory's [limits] says nothing."""


@dataclass
class Runtime:
    inventory: Inventory
    store_url: str | None = None
    actor: str = field(default_factory=default_actor)
    host: str = field(default_factory=socket.gethostname)
    runner: str = field(default_factory=_runner_id)
    clock: Callable[[], datetime] = clock.now
    sleep: Callable[[float], None] = time.sleep
    progress: Callable[[str], None] = lambda _line: None
    transport: httpx.BaseTransport | None = None
    http_options: Mapping[str, Any] = field(default_factory=dict)
    _store: Store | None = None
    _master: MasterKey | None = None
    _fingerprint: bytes | None = None
    _http: HttpClient | None = None
    _client: httpx.Client | None = None
    _providers: dict[str, Provider] = field(default_factory=dict)
    _credentials: InventoryCredentials | None = None
    observers: list[Callable[[Any], None]] = field(default_factory=list)

    @property
    def store(self) -> Store:
        if self._store is None:
            from rotator.store.db import open_store

            self._store = open_store(self.store_url)
        return self._store

    @property
    def master_key(self) -> MasterKey:
        if self._master is None:
            from rotator.keys import load_master_key

            self._master = load_master_key()
        return self._master

    @property
    def fingerprint_key(self) -> bytes:
        if self._fingerprint is None:
            from rotator.keys import load_fingerprint_key

            self._fingerprint = load_fingerprint_key()
        return self._fingerprint

    def fingerprint(self, value: Secret) -> str:
        from audit.fingerprint import fingerprint

        return fingerprint(self.fingerprint_key, value)

    @property
    def credentials(self) -> InventoryCredentials:
        if self._credentials is None:
            from rotator.credentials import InventoryCredentials
            from rotator.own.store import stored_value

            self._credentials = InventoryCredentials(
                self.inventory.credentials,
                self.inventory.base_dir,
                stored=lambda name: stored_value(self, name),
            )
        return self._credentials

    @property
    def http(self) -> HttpClient:
        if self._http is None:
            from providers.http import HttpClient, RateLimit, build_client
            from rotator import __version__

            net = self.inventory.network
            client = build_client(
                transport=self.transport,
                user_agent=f"rotator/{__version__}",
                proxy=net.proxy,
                ca_bundle=net.ca_bundle,
                trust_environment=net.use_environment,
                deadline=net.call_deadline,
                max_response_bytes=net.max_response_bytes,
            )
            merged = {**DEFAULT_LIMITS}
            for name, lim in self.inventory.limits.items():
                merged[name] = {**merged.get(name, {}), **lim}
            limits = {
                name: RateLimit(
                    lim.get("rate", 5.0),
                    int(lim.get("concurrency", 4)),
                    clock=lambda: self.clock().timestamp(),
                    sleep=self.sleep,
                )
                for name, lim in merged.items()
            }
            budget = self._cloudflare_budget(limits["cloudflare"], merged["cloudflare"])
            limits["cloudflare"] = budget
            for kind, shared in SHARED_LIMITS.items():
                limits.setdefault(kind, limits[shared])
            self._client = client
            self._http = HttpClient(client, sleep=self.sleep, limits=limits, **self.http_options)
            self._http.observers.extend(self.observers)
            self._http.observers.append(budget.observe)
        return self._http

    def _cloudflare_budget(self, pace: Any, settings: Mapping[str, float]) -> Any:
        """Wrap the per-process pace in the account's budget, kept in the store.

        Every runner process takes Cloudflare requests from one window in the database,
        so several runners, CI and the dashboard stay under Cloudflare's 1,200 per 5
        minutes; the store is opened at the first Cloudflare call, not here.
        """
        from rotator.store.cloudflare_budget import DEFAULT_SHARE, INLINE_WAIT, CloudflareBudget

        return CloudflareBudget(
            lambda: self.store,
            inner=pace,
            share=int(settings.get("share", DEFAULT_SHARE)),
            now=self.clock,
            sleep=self.sleep,
            # Pauses as short as the HTTP client waits inline; a longer one (a spent
            # window, a 5-minute block) goes to the engine, which retries the step after
            # it without counting it as a failed attempt.
            max_wait=INLINE_WAIT,
            progress=self.progress,
        )

    def provider(self, name: str) -> Provider:
        if name not in self._providers:
            from providers.registry import get_provider

            self._providers[name] = get_provider(name)()
        return self._providers[name]

    def provider_context(
        self,
        spec: SecretSpec,
        scope_env: str,
        rotation_id: str,
        current: Secret | None = None,
        current_ref: str | None = None,
        resumed: bool = True,
        created_at: datetime | None = None,
    ) -> ProviderContext:
        from providers.base import ProviderContext

        return ProviderContext(
            secret_name=spec.name,
            scope_env=None if scope_env == "shared" else scope_env,
            rotation_id=rotation_id,
            options=spec.options_for(scope_env),
            urls=self.inventory.providers.get(spec.provider, {}),
            http=self.http,
            credentials=self.credentials,
            current=current,
            current_ref=current_ref,
            resumed=resumed,
            created_at=created_at,
        )

    def targets(self, environment: str) -> list[Target]:
        from rotator.targets.base import get_target

        env = self.inventory.environment(environment)
        built = []
        for spec in env.targets:
            cls = get_target(spec.kind)
            options = dict(spec.options)
            urls = dict(self.inventory.targets.get(spec.kind.split("-")[0], {}))
            urls.setdefault("base_dir", str(self.inventory.base_dir))
            built.append(cls(options, environment, self.http, self.credentials, urls))
        return built

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        if self._store is not None:
            self._store.dispose()
