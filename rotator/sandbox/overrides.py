"""Print the inventory settings that point rotator at a running sandbox."""

from __future__ import annotations

from rotator.sandbox.google_oauth import TOKEN_PATH


def inventory_overrides(base_url: str) -> str:
    """Return the TOML that sets every provider, target and environment URL to the sandbox.

    The tables follow docs/contracts.md; merge them over an inventory (environments keep
    their targets, only `url` and `health_path` change).
    """
    base = base_url.rstrip("/")
    token_url = base + TOKEN_PATH
    return f"""\
[providers.resend]
base_url = "{base}/resend"

[providers.stripe]
base_url = "{base}/stripe"

[providers.gcp-identity]
apikeys_url = "{base}/google/apikeys"
identitytoolkit_url = "{base}/google/identitytoolkit"
iam_url = "{base}/google/iam"
token_url = "{token_url}"

[providers.google-oauth]
token_url = "{token_url}"

[targets.cloudflare]
base_url = "{base}/cloudflare/client/v4"

[environments.staging]
url = "{base}/env/staging"
health_path = "/api/health"

[environments.production]
url = "{base}/env/production"
health_path = "/api/health"
"""
