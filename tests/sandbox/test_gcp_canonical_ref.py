"""Issue 18.3 against the sandbox: `--ref idp-web-initial` resolves to the key's name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from providers.base import ProviderContext
from providers.gcp_identity import GcpIdentityApiKeyProvider
from providers.http import HttpClient
from rotator import clock as rotator_clock
from rotator.errors import BadInputError
from rotator.sandbox import Sandbox, SeededValue
from rotator.sandbox.world import GCP_PROJECT
from rotator.secret import Secret

GCP = "BANDOFBAKERS_GCP_IDENTITY_PLATFORM_API_KEY"


class FileCredentials:
    def __init__(self, path: Path) -> None:
        self.file = path

    def secret(self, name: str) -> Secret:
        raise AssertionError("the GCP provider reads a key file")

    def path(self, name: str) -> Path:
        return self.file


def test_key_id_and_resource_name_resolve_to_the_same_key(
    sandbox: Sandbox, seeded: dict[str, SeededValue], tmp_path: Path, clock: Any
) -> None:
    # The service-account JWT carries rotator's time: the sandbox must agree with it (a
    # session fixture elsewhere may hold a simulated year open in this worker).
    clock.now = rotator_clock.now()
    key_file = sandbox.write_service_account_file(tmp_path / "sa.json")
    base = sandbox.base_url
    ctx = ProviderContext(
        secret_name=GCP,
        scope_env=None,
        rotation_id="import",
        options={"project": GCP_PROJECT},
        urls={
            "apikeys_url": f"{base}/google/apikeys",
            "token_url": f"{base}/google/oauth2/token",
        },
        http=HttpClient(httpx.Client(timeout=10), sleep=lambda s: None),
        credentials=FileCredentials(key_file),
    )
    provider = GcpIdentityApiKeyProvider()
    name = seeded[GCP].ref
    assert provider.canonical_ref(ctx, "idp-web-initial") == name
    assert provider.canonical_ref(ctx, name) == name
    with pytest.raises(BadInputError, match="does not exist"):
        provider.canonical_ref(ctx, "idp-web-other")
