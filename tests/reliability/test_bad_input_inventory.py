"""Bad inventories: each is refused with exit 3, every problem named by its key path."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.reliability.conftest import Case, expect

Edit = Callable[[str], str]


def _replace(old: str, new: str) -> Edit:
    def edit(text: str) -> str:
        assert old in text, old
        return text.replace(old, new, 1)

    return edit


def _append(extra: str) -> Edit:
    return lambda text: text + extra


CASES: list[tuple[str, Edit, list[str]]] = [
    ("malformed-toml", _append("\n[settings\n"), ["not valid TOML"]),
    (
        "misspelt-key",
        _replace('soak = "24h"', 'sock = "24h"'),
        ["settings.sock: unknown key", "(did you mean 'soak'?)"],
    ),
    (
        "missing-provider",
        _replace('provider = "stripe"\n', ""),
        ["secrets.BANDOFBAKERS_STRIPE_SECRET_KEY.provider: found nothing, expected one of"],
    ),
    (
        "unknown-provider",
        _replace('provider = "stripe"', 'provider = "strip"'),
        ["secrets.BANDOFBAKERS_STRIPE_SECRET_KEY.provider: found 'strip', expected one of"],
    ),
    (
        "bad-time-zone",
        _replace('time_zone = "Europe/London"', 'time_zone = "Europe/Londn"'),
        ["settings.time_zone: found 'Europe/Londn', expected an IANA time zone"],
    ),
    (
        "unknown-target-kind",
        _replace('kind = "cloudflare-workers"', 'kind = "cloudflare-worker"'),
        ["targets[0].kind: found 'cloudflare-worker', expected one of"],
    ),
    (
        "per-environment-without-environments",
        _append('\n[secrets.EXTRA_TOKEN]\nprovider = "resend"\nscope = "per-environment"\n'),
        ["secrets.EXTRA_TOKEN.environments: found nothing, expected one"],
    ),
    (
        "credential-value-inline",
        _replace(
            'cloudflare_api_token = { env = "ROTATOR_SANDBOX_CLOUDFLARE_TOKEN" }',
            'cloudflare_api_token = "cf-token-pasted-here"',
        ),
        ["credentials.cloudflare_api_token: found a str (not shown)"],
    ),
    (
        "every-problem-at-once",
        lambda t: _replace('soak = "24h"', 'soak = "1 day"')(
            _replace('time_zone = "Europe/London"', 'time_zone = "Mars/Olympus"')(t)
        ),
        ["has 2 problem(s)", "settings.soak: found '1 day'", "settings.time_zone"],
    ),
]


@pytest.mark.parametrize(("edit", "messages"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_inventory_is_refused_with_its_key_path(
    q1: Case, edit: Edit, messages: list[str]
) -> None:
    bad = q1.root / "bad.toml"
    bad.write_text(edit(q1.inventory.read_text()))
    done = expect(q1, "status", "-i", str(bad), code=3, message=messages[0])
    for message in messages[1:]:
        assert message in done.stderr
    assert "cf-token-pasted-here" not in done.stdout + done.stderr


def test_missing_inventory_file(q1: Case) -> None:
    expect(q1, "status", "-i", str(q1.root / "nope.toml"), code=3, message="file not found")
