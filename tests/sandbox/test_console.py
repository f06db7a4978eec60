"""Console endpoints: what a person does in the Google console, and their guard rails."""

from __future__ import annotations

import httpx
import pytest

from rotator.sandbox import SeededValue

TOKEN = "/google/oauth2/token"


@pytest.fixture
def production(seeded: dict[str, SeededValue]) -> SeededValue:
    return seeded["GOOGLE_CLIENT_SECRET@production"]


def probe(client: httpx.Client, client_id: str, secret: str) -> int:
    form = {
        "grant_type": "authorization_code",
        "code": "bogus",
        "client_id": client_id,
        "client_secret": secret,
        "redirect_uri": "https://bandofbakers.co.uk/api/auth/callback/google",
    }
    return client.post(TOKEN, data=form).status_code


def test_add_disable_delete_a_client_secret(client: httpx.Client, production: SeededValue) -> None:
    client_id = production.options["client_id"]
    base = f"/console/google/clients/{client_id}/secrets"
    added = client.post(base)
    assert added.status_code == 201
    new = added.json()
    assert new["client_secret"].startswith("GOCSPX-") and new["enabled"] is True
    assert probe(client, client_id, new["client_secret"]) == 400
    assert probe(client, client_id, production.value) == 400

    third = client.post(base)
    assert third.status_code == 409  # two secrets at most

    enabled = client.delete(f"{base}/{production.ref}")
    assert enabled.status_code == 409  # disable first

    disabled = client.post(f"{base}/{production.ref}/disable")
    assert disabled.status_code == 200 and disabled.json()["enabled"] is False
    assert probe(client, client_id, production.value) == 401

    assert client.delete(f"{base}/{production.ref}").json() == {
        "id": production.ref,
        "deleted": True,
    }
    listed = client.get(base).json()["secrets"]
    assert [s["id"] for s in listed] == [new["id"]]
    assert all("client_secret" not in s for s in listed)


def test_unknown_client_and_secret_are_404(client: httpx.Client, production: SeededValue) -> None:
    assert client.post("/console/google/clients/nope/secrets").status_code == 404
    base = f"/console/google/clients/{production.options['client_id']}/secrets"
    assert client.post(f"{base}/secret-9/disable").status_code == 404


def test_console_validates_stripe_key_requests(client: httpx.Client, seeded: object) -> None:
    assert client.post("/console/stripe/keys", json={"type": "publishable"}).status_code == 400
    assert client.post("/console/stripe/keys", json={"permissions": "all"}).status_code == 400
    test_mode = client.post("/console/stripe/keys", json={"type": "secret", "live": False})
    assert test_mode.json()["secret"].startswith("sk_test_")
