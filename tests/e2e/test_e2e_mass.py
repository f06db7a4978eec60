"""`rotate emergency --all`: every secret at once, one redeploy per environment and step."""

from __future__ import annotations

import json

from tests.e2e.conftest import World


def test_mass_emergency_batches_redeploys(world: World) -> None:
    w = world
    w.at("2027-02-10T11:00")
    done = w.rotate("emergency", "--all", "--reason", "laptop stolen", "--yes", "--json")
    # Stripe and Google need a person: the automated ones finish, the others wait for supply.
    outcomes = {o["unit"]: o for o in json.loads(done.stdout)}
    assert len(outcomes) == 6, outcomes
    assert outcomes["BANDOFBAKERS_RESEND_API_KEY"]["status"] in ("done", "waiting")
    assert outcomes["BANDOFBAKERS_STRIPE_SECRET_KEY"]["status"] == "person"
    status = w.status()
    assert status[("BANDOFBAKERS_RESEND_API_KEY", "shared")]["rotations"] == []
    assert status[("BANDOFBAKERS_GCP_IDENTITY_PLATFORM_API_KEY", "shared")]["rotations"] == []
    waiting = status[("BANDOFBAKERS_STRIPE_SECRET_KEY", "shared")]["rotations"][0]
    assert waiting["kind"] == "emergency" and waiting["state"] == "awaiting-supply"
    requests = w.sandbox.state()["requests"]
    retries = sum(v for k, v in requests.items() if k.endswith("/retry"))
    # Stage (staging) and promote (production): one Pages redeploy each for both secrets.
    assert retries == 2, requests
    assert w.sandbox.state()["credentials"]["resend"] == 1
    assert w.sandbox.state()["credentials"]["gcp_api_keys"] == 1
    assert "assessed 6 emergencies" in done.stderr
    assert w.rotate("audit", "verify").returncode == 0


def test_selection_by_provider_and_bad_selection(world: World) -> None:
    w = world
    w.at("2027-02-10T11:00")
    done = w.rotate("emergency", "--provider", "resend", "--reason", "leak", "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "BANDOFBAKERS_RESEND_API_KEY" in done.stdout
    assert "STRIPE" not in done.stdout
    bad = w.rotate("emergency", "--provider", "mailgun", "--reason", "x", "--yes")
    assert bad.returncode == 2 and "no secret uses provider 'mailgun'" in bad.stderr
    nothing = w.rotate("emergency", "--reason", "x", "--yes")
    assert nothing.returncode == 2 and "--all" in nothing.stderr
    no_reason = w.rotate("emergency", "--all", "--yes")
    assert no_reason.returncode == 4 and "needs --reason" in no_reason.stderr
