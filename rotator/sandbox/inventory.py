"""Write a Band of Bakers inventory that points every provider and target at a sandbox."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from rotator.sandbox.environments import LOCAL_OAUTH_CLIENT_ID
from rotator.sandbox.overrides import inventory_overrides
from rotator.sandbox.seed import REFERRER
from rotator.sandbox.server import Sandbox
from rotator.sandbox.world import GCP_PROJECT

CLOUDFLARE_TOKEN_ENV = "ROTATOR_SANDBOX_CLOUDFLARE_TOKEN"  # noqa: S105 (a variable name)
NOTIFY_KEY_ENV = "ROTATOR_SANDBOX_NOTIFY_KEY"
ROLLBAR_TOKEN_ENV = "ROTATOR_SANDBOX_ROLLBAR_TOKEN"  # noqa: S105 (a variable name)
LOGFLARE_KEY_ENV = "ROTATOR_SANDBOX_LOGFLARE_KEY"
POLL_INTERVAL = 0.05
"""The sandbox's Pages builds advance one stage per poll; nothing is gained by waiting."""


def sandbox_inventory(
    sandbox: Sandbox,
    workdir: Path,
    *,
    webhook_url: str | None = None,
    notify_email: bool = True,
    extra: str = "",
    emergency_monitoring: str = "0s",
) -> Path:
    """Write `workdir/inventory.toml` and the service-account key; return the inventory path.

    The tool's own credentials stay out of the file: the Cloudflare token and the
    notification key are read from environment variables the caller sets
    (`sandbox_environment`), the service-account key from a 0600 file.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    sa = sandbox.write_service_account_file(workdir / "gcp-service-account.json")
    clients = {b.name: b.oauth_client_id for b in sandbox.world.environments.values()}
    clients["local"] = LOCAL_OAUTH_CLIENT_ID
    account = sandbox.account_id
    channels = []
    if notify_email:
        channels.append(
            '{ kind = "email", to = ["security@bandofbakers.example"], '
            'sender = "rotator@bandofbakers.example", api_key = "notify_resend_key" }'
        )
    if webhook_url:
        channels.append(f'{{ kind = "webhook", url = "{webhook_url}" }}')
    overrides = inventory_overrides(sandbox.base_url)
    # The overrides carry the environment URLs; the targets are added to those tables here.
    overrides = overrides.replace(
        'health_path = "/api/health"\n',
        'health_path = "/api/health"\n__TARGETS__\n',
    )
    parts = overrides.split("__TARGETS__")
    staging_targets = _targets(account, "staging", "preview", 'branch = "staging", ')
    production_targets = _targets(account, "production", "production")
    overrides = (
        parts[0]
        + staging_targets
        + _signals(sandbox.base_url, "staging")
        + parts[1]
        + "require_approval = true\n"
        + production_targets
        + _signals(sandbox.base_url, "production")
        + parts[2]
    )
    notify_credential = (
        f'notify_resend_key = {{ env = "{NOTIFY_KEY_ENV}" }}\n' if notify_email else ""
    )
    text = f"""\
# Band of Bakers pointed at the sandbox at {sandbox.base_url} (written by rotator).
[settings]
time_zone = "Europe/London"
quarter_start_months = [1, 4, 7, 10]
soak = "24h"
monitoring = "24h"
# The sandbox answers at once: three failed checks a second apart make a verdict.
health_failures = 3
health_span = "2s"
# Rollbar or Logflare silent this long: the step waits and a person is told.
signal_grace = "6h"
emergency_monitoring = "{emergency_monitoring}"

[maintenance_window]
days = ["tue", "wed", "thu"]
start = "02:00"
end = "04:00"

[environments.local]
url = "http://localhost:3000"
targets = [{{ kind = "dotenv", path = "{workdir / ".env.local"}" }}]

[secrets.BANDOFBAKERS_RESEND_API_KEY]
provider = "resend"
scope = "shared"
options = {{ permission = "full_access" }}

[secrets.BANDOFBAKERS_STRIPE_SECRET_KEY]
provider = "stripe"
scope = "shared"
options = {{ live = true }}

[secrets.BANDOFBAKERS_GCP_IDENTITY_PLATFORM_API_KEY]
provider = "gcp-identity"
scope = "shared"
options = {{ project = "{GCP_PROJECT}", allowed_referrers = ["{REFERRER}"] }}

[secrets.GOOGLE_CLIENT_SECRET]
provider = "google-oauth"
scope = "per-environment"
{_clients(clients)}
{overrides}
[credentials]
cloudflare_api_token = {{ env = "{CLOUDFLARE_TOKEN_ENV}" }}
gcp_service_account = {{ file = "{sa}" }}
rollbar_read_token = {{ env = "{ROLLBAR_TOKEN_ENV}" }}
logflare_api_key = {{ env = "{LOGFLARE_KEY_ENV}" }}
{notify_credential}
[notifications]
channels = [{", ".join(channels)}]

[audit]
origin = "sandbox.bandofbakers.example/rotator"
checkpoint_every = 1000
external_sink = "{workdir / "audit-checkpoints.log"}"

# The sandbox does not rate-limit unless a fault profile says so.
[limits.resend]
rate = 500
concurrency = 16
[limits.cloudflare]
rate = 500
concurrency = 16
{extra}
"""
    path = workdir / "inventory.toml"
    path.write_text(text)
    return path


def _targets(account: str, env: str, deployment: str, branch: str = "") -> str:
    return (
        "targets = [\n"
        f'  {{ kind = "cloudflare-workers", account_id = "{account}", '
        f'script = "bandofbakers-{env}" }},\n'
        f'  {{ kind = "cloudflare-pages", account_id = "{account}", project = "bandofbakers", '
        f'deployment = "{deployment}", {branch}poll_interval = {POLL_INTERVAL} }},\n'
        "]\n"
    )


def _signals(base_url: str, env: str) -> str:
    """Rollbar and Logflare for `env`, at the sandbox; thresholds are the strategy's."""
    base = base_url.rstrip("/")
    rate = "0.01" if env == "production" else "0.02"
    return (
        f"[[environments.{env}.signals]]\n"
        f'kind = "rollbar"\ncredential = "rollbar_read_token"\nbase_url = "{base}/rollbar"\n'
        f"max_error_rate = {rate}\n"
        f"[[environments.{env}.signals]]\n"
        f'kind = "logflare"\ncredential = "logflare_api_key"\nbase_url = "{base}/logflare"\n'
        f'endpoint = "rotator.error-counts"\nmax_error_rate = {rate}\n'
    )


def _clients(clients: Mapping[str, str]) -> str:
    lines = []
    for env in ("local", "staging", "production"):
        lines.append(f"[secrets.GOOGLE_CLIENT_SECRET.environments.{env}]")
        lines.append(f'client_id = "{clients[env]}"')
        lines.append('redirect_uri = "https://bandofbakers.example/api/auth/callback/google"')
    return "\n".join(lines) + "\n"


def sandbox_environment(sandbox: Sandbox, notify_key: str | None = None) -> dict[str, str]:
    """Return the environment variables the sandbox inventory reads its credentials from."""
    env = {
        CLOUDFLARE_TOKEN_ENV: sandbox.cloudflare_token,
        ROLLBAR_TOKEN_ENV: sandbox.rollbar_token,
        LOGFLARE_KEY_ENV: sandbox.logflare_key,
    }
    if notify_key is not None:
        env[NOTIFY_KEY_ENV] = notify_key
    return env
