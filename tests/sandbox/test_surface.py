"""The package's public names, the inventory overrides, and a log that shows no values."""

from __future__ import annotations

import tomllib

import httpx

import rotator.sandbox
from rotator.sandbox import Sandbox, inventory_overrides


def test_public_names_are_pinned() -> None:
    assert sorted(rotator.sandbox.__all__) == [
        "DEFAULT_ENVIRONMENTS",
        "DropConnectionError",
        "EnvironmentBinding",
        "FaultProfile",
        "HealthRecord",
        "PROFILES",
        "RequestHook",
        "Sandbox",
        "SeededValue",
        "inventory_overrides",
        "profile_named",
    ]


def test_overrides_point_every_url_at_the_sandbox() -> None:
    parsed = tomllib.loads(inventory_overrides("http://127.0.0.1:8765/"))
    base = "http://127.0.0.1:8765"
    assert parsed["providers"]["resend"] == {"base_url": f"{base}/resend"}
    assert parsed["providers"]["stripe"] == {"base_url": f"{base}/stripe"}
    assert parsed["providers"]["gcp-identity"] == {
        "apikeys_url": f"{base}/google/apikeys",
        "identitytoolkit_url": f"{base}/google/identitytoolkit",
        "token_url": f"{base}/google/oauth2/token",
        "iam_url": f"{base}/google/iam",
    }
    assert parsed["providers"]["google-oauth"] == {"token_url": f"{base}/google/oauth2/token"}
    assert parsed["targets"]["cloudflare"] == {"base_url": f"{base}/cloudflare/client/v4"}
    assert parsed["environments"]["production"] == {
        "url": f"{base}/env/production",
        "health_path": "/api/health",
    }


def test_overrides_reach_live_endpoints() -> None:
    with Sandbox(faults="none") as sandbox:
        sandbox.seed_bandofbakers()
        parsed = tomllib.loads(inventory_overrides(sandbox.base_url))
        for env in ("staging", "production"):
            settings = parsed["environments"][env]
            url = settings["url"] + settings["health_path"]
            assert httpx.get(url).status_code == 200


def test_access_log_shows_no_query_strings_or_values() -> None:
    lines: list[str] = []
    with Sandbox(faults="none", log=lines.append) as sandbox:
        seeded = sandbox.seed_bandofbakers()
        api_key = seeded["BANDOFBAKERS_GCP_IDENTITY_PLATFORM_API_KEY"].value
        with httpx.Client(base_url=sandbox.base_url, verify=False) as client:
            client.get("/google/identitytoolkit/v1/projects", params={"key": api_key})
            client.get("/nowhere", params={"key": api_key})
    assert lines == [
        "GET /google/identitytoolkit/v1/projects 403",
        "GET /nowhere 404",
    ]


def test_seeded_values_do_not_show_in_repr() -> None:
    with Sandbox(faults="none") as sandbox:
        seeded = sandbox.seed_bandofbakers()
    for value in seeded.values():
        assert value.value not in repr(value)
