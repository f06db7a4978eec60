"""Fixtures for provider tests: the fake APIs, a service-account key file, contexts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from provider_fakes import SA_EMAIL, FakeWorld, MakeCtx

from providers import google_auth
from providers.base import ProviderContext
from providers.http import HttpClient
from rotator.secret import Secret


class FileCredentials:
    """A `CredentialSource` holding only the service-account key file."""

    def __init__(self, sa_path: Path) -> None:
        self.sa_path = sa_path

    def secret(self, name: str) -> Secret:
        raise KeyError(name)

    def path(self, name: str) -> Path:
        assert name == "gcp_service_account"
        return self.sa_path


@pytest.fixture(autouse=True)
def _fresh_token_cache() -> Iterator[None]:
    google_auth.clear_token_cache()
    yield
    google_auth.clear_token_cache()


@pytest.fixture
def world() -> FakeWorld:
    return FakeWorld()


@pytest.fixture
def sa_key(world: FakeWorld, tmp_path: Path) -> dict[str, Any]:
    """Write a service-account key file whose public key the fake Google knows."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    info = {
        "type": "service_account",
        "client_email": SA_EMAIL,
        "private_key": pem,
        "private_key_id": "0123abcd",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    path = tmp_path / "gcp-sa.json"
    path.write_text(json.dumps(info))
    world.google.service_accounts[SA_EMAIL] = private.public_key()
    return {"path": path, "pem": pem, **info}


@pytest.fixture
def make_ctx(world: FakeWorld, tmp_path: Path) -> MakeCtx:
    def make(
        secret_name: str,
        *,
        http: HttpClient | None = None,
        options: dict[str, Any] | None = None,
        current: Secret | None = None,
        current_ref: str | None = None,
        scope_env: str | None = None,
        rotation_id: str = "2026q3-01",
        urls: dict[str, str] | None = None,
    ) -> ProviderContext:
        return ProviderContext(
            secret_name=secret_name,
            scope_env=scope_env,
            rotation_id=rotation_id,
            options=options or {},
            urls=urls or {},
            http=http or world.http(),
            credentials=FileCredentials(tmp_path / "gcp-sa.json"),
            current=current,
            current_ref=current_ref,
        )

    return make
