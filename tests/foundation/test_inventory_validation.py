"""The inventory: the example validates; every problem is reported at once with its path."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from rotator import inventory
from rotator.errors import InventoryError, UnknownNameError
from tests.conftest import EXAMPLE


def _example() -> dict[str, Any]:
    return tomllib.loads(EXAMPLE.read_text())


def test_example_inventory_is_valid() -> None:
    inv = inventory.load(EXAMPLE)
    assert set(inv.secrets) == {
        "BANDOFBAKERS_RESEND_API_KEY",
        "BANDOFBAKERS_STRIPE_SECRET_KEY",
        "BANDOFBAKERS_GCP_IDENTITY_PLATFORM_API_KEY",
        "GOOGLE_CLIENT_SECRET",
    }
    assert inv.time_zone == "Europe/London"
    assert inv.quarter_start_months == (1, 4, 7, 10)
    google = inv.secret("GOOGLE_CLIENT_SECRET")
    assert google.scope_envs(inv) == ("local", "staging", "production")
    assert google.options_for("staging")["client_id"].startswith("1001-staging")
    assert inv.secret("BANDOFBAKERS_RESEND_API_KEY").scope_envs(inv) == ("shared",)
    assert inv.environments["production"].require_approval is True
    assert inv.environments["local"].health_path is None


def test_three_problems_reported_at_once_with_key_paths() -> None:
    data = _example()
    data["settings"]["soakk"] = data["settings"].pop("soak")
    del data["secrets"]["BANDOFBAKERS_STRIPE_SECRET_KEY"]["provider"]
    data["settings"]["time_zone"] = "Europe/Londn"
    with pytest.raises(InventoryError) as caught:
        inventory.parse(data)
    problems = caught.value.problems
    assert len(problems) == 3, problems
    joined = "\n".join(problems)
    assert "settings.soakk: unknown key" in joined and "did you mean 'soak'" in joined
    assert "secrets.BANDOFBAKERS_STRIPE_SECRET_KEY.provider: found nothing" in joined
    assert "settings.time_zone: found 'Europe/Londn'" in joined
    assert caught.value.exit_code == 3


def test_per_environment_options_name_unknown_environment() -> None:
    data = _example()
    data["secrets"]["GOOGLE_CLIENT_SECRET"]["environments"]["stagin"] = {"client_id": "x"}
    with pytest.raises(InventoryError) as caught:
        inventory.parse(data)
    assert any(
        p.startswith("secrets.GOOGLE_CLIENT_SECRET.environments.stagin:")
        for p in caught.value.problems
    )


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("settings", "soak"), "24 hours", "settings.soak"),
        (("settings", "quarter_start_months"), [1, 1, 13], "settings.quarter_start_months"),
        (("maintenance_window", "days"), ["tues"], "maintenance_window.days"),
        (("maintenance_window", "start"), "2am", "maintenance_window.start"),
        (("environments", "staging", "url"), "staging.example", "environments.staging.url"),
        (
            ("secrets", "GOOGLE_CLIENT_SECRET", "scope"),
            "global",
            "secrets.GOOGLE_CLIENT_SECRET.scope",
        ),
        (("providers", "resend", "base_url"), "api.resend.com", "providers.resend.base_url"),
        (
            ("credentials", "cloudflare_api_token"),
            {"value": "abc"},
            "credentials.cloudflare_api_token",
        ),
    ],
)
def test_each_bad_value_names_its_key_path(
    path: tuple[str, ...], value: Any, expected: str
) -> None:
    data = _example()
    table = data
    for key in path[:-1]:
        table = table[key]
    table[path[-1]] = value
    with pytest.raises(InventoryError) as caught:
        inventory.parse(data)
    assert any(p.startswith(expected) for p in caught.value.problems), caught.value.problems


def test_target_options_are_checked_by_the_plugin() -> None:
    data = _example()
    data["environments"]["staging"]["targets"][0].pop("script")
    data["environments"]["staging"]["targets"][1]["projct"] = "x"
    with pytest.raises(InventoryError) as caught:
        inventory.parse(data)
    joined = "\n".join(caught.value.problems)
    assert "environments.staging.targets[0].script: missing" in joined
    assert "environments.staging.targets[1].projct: unknown option" in joined


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="file not found"):
        inventory.load(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[settings\ntime_zone = 1")
    with pytest.raises(InventoryError, match="not valid TOML"):
        inventory.load(bad)


def test_unknown_secret_and_environment_list_the_known_ones() -> None:
    inv = inventory.load(EXAMPLE)
    with pytest.raises(UnknownNameError, match="BANDOFBAKERS_RESEND_API_KEY"):
        inv.secret("RESEND")
    with pytest.raises(UnknownNameError, match="local, staging, production"):
        inv.environment("prod")
