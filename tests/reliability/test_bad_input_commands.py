"""Bad command-line input and commands out of order: a clear message, the documented exit
code, and nothing changed (a refused command adds exactly one `command.refused` event)."""

from __future__ import annotations

import pytest

from tests.reliability.conftest import GOOGLE, RESEND, STRIPE, Case, expect

# ----------------------------------------------------------------------------- names
NAMES = [
    ("unknown-secret", ["show", "NOPE_KEY"], "unknown secret 'NOPE_KEY'; the inventory defines:"),
    (
        "unknown-environment",
        ["show", GOOGLE, "--env", "qa"],
        "unknown environment 'qa'; the inventory defines: local, staging, production",
    ),
    (
        "env-for-shared-secret",
        ["supply", STRIPE, "--env", "staging"],
        f"{STRIPE} is shared by staging and production; do not pass --env",
    ),
    (
        "env-missing-for-per-environment-secret",
        ["supply", GOOGLE],
        f"{GOOGLE} has one value per environment; pass --env (local, staging, production)",
    ),
    ("unknown-option", ["status", "--jsn"], "No such option: --jsn"),
    ("at-not-a-date", ["plan", "--at", "tomorrow"], "--at 'tomorrow' is not a date-time"),
    (
        "since-not-a-date",
        ["audit", "log", "--since", "yesterday"],
        "--since 'yesterday' is not a date or date-time",
    ),
]


@pytest.mark.parametrize(("args", "message"), [n[1:] for n in NAMES], ids=[n[0] for n in NAMES])
def test_bad_names_and_options(q1: Case, args: list[str], message: str) -> None:
    expect(q1, *args, code=2, message=message, input="sk_live_unused\n")


# ----------------------------------------------------------------------------- order
ORDER = [
    (
        "supply-when-nothing-awaits",
        "q1",
        ["supply", RESEND],
        "refused: no value is awaited: the rotation is staged",
    ),
    (
        "review-before-revoke",
        "q1",
        ["review", RESEND, "--note", "ok"],
        "refused: the security review comes after revocation; the rotation is staged "
        "(allowed from 2027-03-31T23:00:00+00:00)",
    ),
    (
        "rollback-before-promote",
        "q1",
        ["rollback", RESEND, "--reason", "test"],
        "refused: rollback is possible after promote and before revoke; the rotation is "
        "staged; use `rotate abort` before promotion",
    ),
    (
        "abort-after-promote",
        "promoted",
        ["abort", RESEND, "--reason", "test"],
        "refused: abort is possible only before promotion; the rotation is promoted; "
        "use `rotate rollback` instead",
    ),
    (
        "approve-after-promote",
        "promoted",
        ["approve", RESEND],
        "refused: approval is given between generate and promote; the rotation is promoted",
    ),
    (
        "confirm-unknown-step",
        "q1",
        ["confirm", RESEND, "--step", "generate"],
        "refused: only `--step revoke` awaits confirmation",
    ),
    (
        "confirm-revoke-when-nothing-awaits",
        "q1",
        ["confirm", RESEND, "--step", "revoke"],
        "refused: no revocation awaits confirmation: the rotation is staged",
    ),
    (
        "resume-when-not-failed",
        "q1",
        ["resume", RESEND],
        "refused: the rotation has not failed; it is staged",
    ),
    (
        "import-over-a-current-value",
        "q1",
        ["import", RESEND],
        f"refused: {RESEND} already has a current value; rotate it instead",
    ),
    (
        "emergency-without-reason",
        "q1",
        ["emergency", RESEND, "--reason", " ", "--yes"],
        "refused: an emergency needs --reason (what leaked, how)",
    ),
    (
        "review-without-note",
        "q1",
        ["review", RESEND, "--note", " "],
        "refused: a review needs --note saying what was checked",
    ),
]


@pytest.mark.parametrize(
    ("state", "args", "message"), [o[1:] for o in ORDER], ids=[o[0] for o in ORDER]
)
def test_command_out_of_order_is_refused_and_audited(
    request: pytest.FixtureRequest, state: str, args: list[str], message: str
) -> None:
    case: Case = request.getfixturevalue(state)
    expect(case, *args, code=4, message=message, refused=True, input="re_unused_value\n")


# ----------------------------------------------------------------------------- values
VALUES = [
    ("empty", "\n", "the supplied value is empty"),
    ("whitespace", "   \t \n", "the supplied value is only whitespace"),
    ("multi-line", "sk_live_one\nsk_live_two\n", "the supplied value spans several lines"),
    ("space-padded", " sk_live_padded \n", "the supplied value starts or ends with spaces"),
]


@pytest.mark.parametrize(("value", "message"), [v[1:] for v in VALUES], ids=[v[0] for v in VALUES])
def test_malformed_supplied_value(q1: Case, value: str, message: str) -> None:
    expect(q1, "supply", STRIPE, code=2, message=message, input=value)


def test_stripe_test_key_where_a_live_key_is_expected(q1: Case) -> None:
    body = q1.state.person._post("/console/stripe/keys", {"type": "secret", "live": False})
    value = str(body["secret"])
    assert value.startswith("sk_test_")
    done = expect(
        q1,
        "supply",
        STRIPE,
        code=7,
        message=f"this is a test-mode key (sk_test_…) but {STRIPE} needs a live-mode key",
        input=value + "\n",
    )
    assert value not in done.stdout + done.stderr


def test_made_up_stripe_live_key_is_refused_by_stripe(q1: Case) -> None:
    value = "sk_live_" + "Q" * 99
    done = expect(
        q1,
        "supply",
        STRIPE,
        code=7,
        message="stripe validate (HTTP 401): Stripe does not accept this key",
        input=value + "\n",
    )
    assert value not in done.stdout + done.stderr


def test_wrong_google_client_secret_is_refused_by_google(q1: Case) -> None:
    value = "GOCSPX-" + "w" * 28
    done = expect(
        q1,
        "supply",
        GOOGLE,
        "--env",
        "staging",
        code=7,
        message="google-oauth validate (HTTP 401): Google does not accept this secret for "
        "OAuth client",
        input=value + "\n",
    )
    assert "(invalid_client)" in done.stderr
    assert value not in done.stdout + done.stderr


# ----------------------------------------------------------------------------- files
def test_audit_verify_of_a_missing_export(q1: Case) -> None:
    missing = q1.root / "nope.jsonl"
    expect(q1, "audit", "verify", str(missing), code=2, message=f"cannot read {missing}")


def test_audit_verify_with_a_missing_public_key(q1: Case) -> None:
    missing = q1.root / "nope.pem"
    expect(
        q1, "audit", "verify", "--public-key", str(missing), code=2, message="no audit public key"
    )


def test_audit_export_into_a_missing_directory(q1: Case) -> None:
    target = q1.root / "no" / "such" / "export.jsonl"
    expect(q1, "audit", "export", str(target), code=2, message="cannot write the export to")
