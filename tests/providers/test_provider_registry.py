"""The entry-point registry, the pinned public surface, and the cost of `import providers`."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import EntryPoint

import pytest

import providers
from providers.base import Capabilities, ProviderContext, credential_name
from providers.registry import GROUP, PluginError, describe, get_provider, load_providers
from providers.resend import ResendProvider
from rotator.errors import UnknownNameError

BUILT_IN = {
    "resend": "providers.resend:ResendProvider",
    "stripe": "providers.stripe:StripeProvider",
    "gcp-identity": "providers.gcp_identity:GcpIdentityApiKeyProvider",
    "google-oauth": "providers.google_oauth:GoogleOAuthClientSecretProvider",
}


def ep(name: str, value: str) -> EntryPoint:
    return EntryPoint(name=name, value=value, group=GROUP)


def test_installed_entry_points_load_the_four_built_ins() -> None:
    loaded = load_providers()
    assert {n: f"{c.__module__}:{c.__qualname__}" for n, c in loaded.items()} == BUILT_IN


def test_duplicate_names_are_refused_naming_both() -> None:
    with pytest.raises(PluginError) as caught:
        load_providers([ep("resend", BUILT_IN["resend"]), ep("resend", BUILT_IN["resend"])])
    message = str(caught.value)
    assert "two providers are named 'resend'" in message
    assert message.count("providers.resend:ResendProvider") == 2


def test_a_broken_plugin_is_named_with_its_exception() -> None:
    with pytest.raises(PluginError) as caught:
        load_providers([ep("acme", "acme_rotator_plugin_missing:AcmeProvider")])
    message = str(caught.value)
    assert "'acme'" in message and "acme_rotator_plugin_missing:AcmeProvider" in message
    assert "ModuleNotFoundError" in message and "unknown distribution" in message


def test_a_plugin_that_is_not_a_provider_is_refused() -> None:
    with pytest.raises(PluginError, match="not a Provider subclass"):
        load_providers([ep("json", "json:dumps")])


def test_a_plugin_whose_name_differs_from_its_entry_point_is_refused() -> None:
    with pytest.raises(PluginError, match="declares name 'resend'"):
        load_providers([ep("mail", BUILT_IN["resend"])])


def test_installed_plugin_names_its_distribution() -> None:
    from importlib.metadata import entry_points

    (resend,) = [e for e in entry_points(group=GROUP) if e.name == "resend"]
    with pytest.raises(PluginError) as caught:
        load_providers([resend, resend])
    assert "rotator 0.1.0" in str(caught.value)


def test_get_provider_lists_known_names_for_an_unknown_one() -> None:
    assert get_provider("resend") is ResendProvider
    with pytest.raises(UnknownNameError) as caught:
        get_provider("mailgun")
    assert "gcp-identity, google-oauth, resend, stripe" in str(caught.value)


def test_describe_shows_capabilities() -> None:
    info = describe(get_provider("stripe"))
    assert info["name"] == "stripe" and info["operator_assisted"] is True
    assert info["automated_generate"] is False and info["verifiable_revocation"] is True
    assert describe(ResendProvider)["operator_assisted"] is False
    assert info["summary"]


def test_public_surface_is_pinned() -> None:
    assert sorted(providers.__all__) == [
        "Capabilities",
        "CredentialSource",
        "GROUP",
        "Generated",
        "HttpClient",
        "HttpProvider",
        "PluginError",
        "Provider",
        "ProviderContext",
        "RateLimit",
        "credential_name",
        "describe",
        "get_provider",
        "load_providers",
        "raise_for",
        "redact_url",
    ]
    for name in providers.__all__:
        assert getattr(providers, name) is not None


def test_importing_providers_and_the_registry_does_not_import_httpx() -> None:
    code = (
        "import sys, providers\n"
        "providers.load_providers()\n"
        "heavy = [m for m in ('httpx', 'httpcore', 'cryptography') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def _ctx(secret: str, rotation_id: str, scope_env: str | None = None) -> ProviderContext:
    return ProviderContext(
        secret_name=secret,
        scope_env=scope_env,
        rotation_id=rotation_id,
        options={},
        urls={},
        http=None,  # type: ignore[arg-type]
        credentials=None,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("secret", "rotation_id", "scope_env"),
    [
        ("BANDOFBAKERS_RESEND_API_KEY", "2026q3-01", None),
        ("GOOGLE_CLIENT_SECRET", "0f8e7a9c-1b2d-4e3f-8a9b-0c1d2e3f4a5b", "staging"),
        ("BANDOFBAKERS_GCP_IDENTITY_PLATFORM_API_KEY", "R" * 80, None),
        ("X", "Ünïcödé_ID:42", None),
    ],
)
@pytest.mark.parametrize("limit", [50, 63])
def test_credential_names_are_stable_short_and_valid_key_ids(
    secret: str, rotation_id: str, scope_env: str | None, limit: int
) -> None:
    import re

    name = credential_name(_ctx(secret, rotation_id, scope_env), max_length=limit)
    assert name == credential_name(_ctx(secret, rotation_id, scope_env), max_length=limit)
    assert len(name) <= limit
    assert re.fullmatch(r"[a-z]([a-z0-9-]{0,61}[a-z0-9])?", name)
    other = credential_name(_ctx(secret, rotation_id + "x", scope_env), max_length=limit)
    assert other != name


def test_capabilities_operator_assisted() -> None:
    assert Capabilities(True, True, True).operator_assisted is False
    assert Capabilities(False, True, True).operator_assisted is True
