"""Resend API keys and email over real HTTP: payloads, cursors and error shapes."""

from __future__ import annotations

import httpx
import pytest

from rotator.sandbox import FaultProfile, Sandbox, SeededValue


def auth(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


@pytest.fixture
def key(seeded: dict[str, SeededValue]) -> str:
    return seeded["BANDOFBAKERS_RESEND_API_KEY"].value


def test_create_returns_the_token_once_and_list_never_does(client: httpx.Client, key: str) -> None:
    created = client.post("/resend/api-keys", json={"name": "rot-1"}, headers=auth(key))
    assert created.status_code == 201
    body = created.json()
    assert set(body) == {"id", "token"} and body["token"].startswith("re_")
    assert created.headers["ratelimit-limit"] and created.headers["ratelimit-reset"]

    listed = client.get("/resend/api-keys", headers=auth(key)).json()
    assert listed["object"] == "list" and listed["has_more"] is False
    assert [k["name"] for k in listed["data"]] == ["rot-1", "bandofbakers-production"]
    assert all(set(k) == {"id", "name", "created_at", "last_used_at"} for k in listed["data"])
    assert body["token"] not in listed.__repr__()

    new_key_works = client.get("/resend/api-keys?limit=1", headers=auth(body["token"]))
    assert new_key_works.status_code == 200


def test_list_pages_with_limit_and_cursors(client: httpx.Client, key: str) -> None:
    for n in range(3):
        client.post("/resend/api-keys", json={"name": f"k{n}"}, headers=auth(key))
    first = client.get("/resend/api-keys", params={"limit": 2}, headers=auth(key)).json()
    assert [k["name"] for k in first["data"]] == ["k2", "k1"] and first["has_more"]
    after = first["data"][-1]["id"]
    rest = client.get("/resend/api-keys", params={"after": after}, headers=auth(key)).json()
    assert [k["name"] for k in rest["data"]] == ["k0", "bandofbakers-production"]
    assert not rest["has_more"]
    before = rest["data"][0]["id"]
    back = client.get(
        "/resend/api-keys", params={"before": before, "limit": 1}, headers=auth(key)
    ).json()
    assert [k["name"] for k in back["data"]] == ["k1"] and back["has_more"]
    bad = client.get("/resend/api-keys", params={"limit": 101}, headers=auth(key))
    assert bad.status_code == 422 and bad.json()["name"] == "invalid_parameter"


@pytest.mark.parametrize(
    ("payload", "status", "name"),
    [
        ({}, 422, "missing_required_field"),
        ({"name": "x" * 51}, 400, "validation_error"),
        ({"name": "ok", "permission": "admin"}, 422, "invalid_access"),
    ],
)
def test_create_validates_fields(
    client: httpx.Client, key: str, payload: dict[str, str], status: int, name: str
) -> None:
    answer = client.post("/resend/api-keys", json=payload, headers=auth(key))
    assert answer.status_code == status
    body = answer.json()
    assert body == {"statusCode": status, "name": name, "message": body["message"]}


def test_deleted_key_is_invalid_in_the_configured_style(
    sandbox: Sandbox, client: httpx.Client, key: str
) -> None:
    created = client.post("/resend/api-keys", json={"name": "doomed"}, headers=auth(key)).json()
    deleted = client.delete(f"/resend/api-keys/{created['id']}", headers=auth(key))
    assert deleted.json() == {"object": "api_key", "id": created["id"], "deleted": True}

    refused = client.get("/resend/api-keys", headers=auth(created["token"]))
    assert refused.status_code == 400
    assert refused.json() == {
        "statusCode": 400,
        "name": "validation_error",
        "message": "API key is invalid",
    }
    sandbox.set_faults(FaultProfile(resend_invalid_key="invalid_api_key"))
    older = client.get("/resend/api-keys", headers=auth(created["token"]))
    assert older.status_code == 403 and older.json()["name"] == "invalid_api_key"
    again = client.delete(f"/resend/api-keys/{created['id']}", headers=auth(key))
    assert again.status_code == 404 and again.json()["name"] == "not_found"


def test_rename_missing_auth_and_missing_user_agent(client: httpx.Client, key: str) -> None:
    created = client.post("/resend/api-keys", json={"name": "a"}, headers=auth(key)).json()
    path = f"/resend/api-keys/{created['id']}"
    renamed = client.patch(path, json={"name": "b"}, headers=auth(key))
    assert renamed.json() == {"object": "api_key", "id": created["id"]}

    missing = client.get("/resend/api-keys")
    assert missing.status_code == 401 and missing.json()["name"] == "missing_api_key"

    del client.headers["user-agent"]
    no_agent = client.get("/resend/api-keys", headers=auth(key))
    assert no_agent.status_code == 403 and b"1010" in no_agent.content


def test_sending_key_sends_but_cannot_manage(
    sandbox: Sandbox, client: httpx.Client, key: str
) -> None:
    sending = client.post(
        "/resend/api-keys", json={"name": "send", "permission": "sending_access"}, headers=auth(key)
    ).json()["token"]
    refused = client.get("/resend/api-keys", headers=auth(sending))
    assert refused.status_code == 401 and refused.json()["name"] == "restricted_api_key"

    email = {
        "from": "rotator@bandofbakers.co.uk",
        "to": ["security@bandofbakers.co.uk"],
        "subject": "Rotated",
        "text": "BANDOFBAKERS_RESEND_API_KEY was rotated.",
    }
    sent = client.post("/resend/emails", json=email, headers=auth(sending))
    assert sent.status_code == 200 and set(sent.json()) == {"id"}
    assert [e.subject for e in sandbox.emails] == ["Rotated"]
    recorded = client.get("/sandbox/emails").json()["emails"]
    assert recorded[0]["to"] == ["security@bandofbakers.co.uk"]

    incomplete = client.post("/resend/emails", json={"from": "a@b.c"}, headers=auth(key))
    assert incomplete.status_code == 422 and incomplete.json()["name"] == "missing_required_field"


def test_unreadable_body_gets_resend_shape(client: httpx.Client, key: str) -> None:
    answer = client.post("/resend/api-keys", content=b"{not json", headers=auth(key))
    assert answer.status_code == 400 and answer.json()["name"] == "validation_error"
