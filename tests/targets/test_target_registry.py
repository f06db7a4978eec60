from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

import rotator.targets
from rotator.errors import TargetConfigError, TargetError, UnknownNameError
from rotator.targets.base import Target, get_target, load_targets
from rotator.targets.cloudflare_pages import PagesVariableTarget
from rotator.targets.cloudflare_workers import WorkersSecretTarget
from rotator.targets.dotenv import DotenvTarget

GROUP = "rotator.targets"


def ep(name: str, value: str) -> EntryPoint:
    return EntryPoint(name=name, value=value, group=GROUP)


def test_the_public_surface_is_pinned():
    assert rotator.targets.__all__ == ["Target", "get_target", "load_targets"]


def test_built_ins_register_through_the_entry_point_group():
    assert load_targets() == {
        "cloudflare-workers": WorkersSecretTarget,
        "cloudflare-pages": PagesVariableTarget,
        "dotenv": DotenvTarget,
    }


def test_get_target_finds_a_kind():
    assert get_target("dotenv") is DotenvTarget


def test_get_target_refuses_an_unknown_kind():
    with pytest.raises(
        UnknownNameError, match=r"'s3'.*cloudflare-pages, cloudflare-workers, dotenv"
    ):
        get_target("s3")


def test_duplicate_names_are_refused():
    found = [
        ep("dotenv", "rotator.targets.dotenv:DotenvTarget"),
        ep("dotenv", "other_plugin:Dotenv"),
    ]
    with pytest.raises(TargetError, match="two target plugins are named 'dotenv'"):
        load_targets(found)


def test_a_plugin_that_fails_to_load_is_named():
    with pytest.raises(
        TargetError, match="'vault' \\(no_such_module:VaultTarget\\) failed to load"
    ):
        load_targets([ep("vault", "no_such_module:VaultTarget")])


def test_a_plugin_that_is_not_a_target_is_refused():
    with pytest.raises(TargetError, match="is not a Target class"):
        load_targets([ep("odd", "rotator.secret:Secret")])


def test_entry_point_name_and_kind_must_match():
    with pytest.raises(TargetError, match="declares kind 'dotenv'"):
        load_targets([ep("files", "rotator.targets.dotenv:DotenvTarget")])


def test_validate_options_lists_missing_and_unknown_keys():
    problems = WorkersSecretTarget.validate_options({"account_id": "", "scirpt": "x"})
    assert problems[0] == "account_id: must be a non-empty string (the Cloudflare account id)"
    assert problems[1].startswith("script: missing; the Worker script name")
    assert problems[2] == (
        "scirpt: unknown option for cloudflare-workers; expected account_id, script, variables"
    )


def test_kind_is_accepted_among_the_options():
    assert DotenvTarget.validate_options({"kind": "dotenv", "path": ".env"}) == []


def test_a_misconfigured_target_cannot_be_built():
    with pytest.raises(TargetConfigError, match=r"environments\.local\.targets"):
        DotenvTarget({}, "local", None, None, {})


def test_finish_defaults_to_nothing():
    class Quiet(Target):
        kind = "quiet"

        def publish(self, values):
            pass

        def describe(self) -> str:
            return "quiet"

    assert Quiet({}, "local", None, None, {}).finish() is None
