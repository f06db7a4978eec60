"""End to end: the tool's own Cloudflare token, imported, rotated monthly, rolled when leaked."""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa

from rotator.sandbox.assertion import ServiceAccount
from rotator.sandbox.cloudflare_tokens import PERMISSION_GROUPS, live_tokens
from rotator.sandbox.inventory import sandbox_inventory
from tests.e2e.conftest import World
from tests.ops.ops_world import WebhookReceiver

RESEND = "BANDOFBAKERS_RESEND_API_KEY"
GCP = "BANDOFBAKERS_GCP_IDENTITY_PLATFORM_API_KEY"


def _verify(w: World, value: str) -> int:
    url = f"{w.sandbox.base_url}/cloudflare/client/v4/user/tokens/verify"
    return httpx.get(url, headers={"Authorization": f"Bearer {value}"}).status_code


def _live(w: World) -> list[str]:
    with w.sandbox.world.lock:
        return [t.value for t in live_tokens(w.sandbox.world.cloudflare)]


def _held_fingerprint(w: World) -> str:
    with sqlite3.connect(f"file:{w.home / 'rotator.db'}?mode=ro", uri=True) as conn:
        rows = conn.execute(
            "SELECT fingerprint FROM own_credential WHERE state = 'current' "
            "AND name = 'cloudflare_api_token'"
        ).fetchall()
    assert len(rows) == 1, rows
    return str(rows[0][0])


def _fingerprint(w: World, value: str) -> str:
    """The tool's fingerprint of a value, computed with its own key (no value printed)."""
    code = (
        "import sys; from rotator.keys import load_fingerprint_key; "
        "from audit.fingerprint import fingerprint; from rotator.secret import Secret; "
        "print(fingerprint(load_fingerprint_key(), Secret(sys.stdin.read())))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        input=value,
        capture_output=True,
        text=True,
        env={**os.environ, **w.env},
        check=True,
    )
    return done.stdout.strip()


def _one_live_token_the_tool_holds(w: World) -> str:
    live = _live(w)
    assert len(live) == 1, f"{len(live)} live tool tokens"
    assert _fingerprint(w, live[0]) == _held_fingerprint(w)
    return live[0]


def _audit_types(w: World) -> list[str]:
    done = w.rotate("audit", "log", "--json")
    assert done.returncode == 0, done.stderr
    return [json.loads(line)["type"] for line in done.stdout.splitlines() if line.strip()]


def _google_keys(w: World) -> tuple[list[str], list[str]]:
    """Live key ids of the tool's service account, and every private key it was issued."""
    g = w.sandbox.world.google
    with w.sandbox.world.lock:
        account = w.sandbox.world.service_account
        keys = [account, *(k for k in g.keys.values() if k.client_email == account.client_email)]
        live = [k.key_id for k in keys if k.key_id not in g.deleted_keys]
        pems = [k.key_file("x")["private_key"] for k in keys]
    return live, pems


def _one_live_key_the_tool_uses(w: World) -> str:
    live, _ = _google_keys(w)
    assert len(live) == 1, f"{len(live)} live service-account keys"
    in_file = json.loads((w.inventory.parent / "gcp-service-account.json").read_text())
    assert in_file["private_key_id"] == live[0]
    return live[0]


def _no_value_in_any_byte(w: World, values: list[str]) -> None:
    text = "\n".join(w.outputs)
    blobs = [p.read_bytes() for p in Path(w.home).rglob("*") if p.is_file()]
    for value in values:
        assert value not in text
        assert all(value.encode() not in blob for blob in blobs)


def test_monthly_token_rotation_while_the_apps_quarterly_rotation_continues(
    world: World,
) -> None:
    w = world
    first = w.sandbox.cloudflare_token
    seen = [first]
    w.at("2027-01-01T02:00")
    imported = w.rotate("credentials", "import", "cloudflare", input=first + "\n", actor="ops@e2e")
    assert imported.returncode == 0, imported.stdout + imported.stderr
    assert "verified" in imported.stdout
    listed = w.rotate("credentials", "list")
    assert "cloudflare_api_token" in listed.stdout and "the store" in listed.stdout

    google = w.rotate("credentials", "rotate", "google", actor="ops@e2e")
    assert google.returncode == 0, google.stdout + google.stderr
    key1 = _one_live_key_the_tool_uses(w)

    w.at("2027-01-01T02:30")
    started = w.rotate("run")
    assert started.returncode == 0, started.stdout + started.stderr
    assert "own credential" not in started.stdout  # imported today: not due
    staged = {r["rotations"][0]["state"] for k, r in w.status().items() if k[0] == RESEND}
    assert staged == {"staged"}

    # A month later the token is due: rotated first, then the app's step runs with it.
    w.at("2027-02-01T02:30")
    ran = w.rotate("run")
    assert ran.returncode in (0, 1), ran.stdout + ran.stderr
    assert "own credential cloudflare_api_token: done" in ran.stdout, ran.stdout + ran.stderr
    assert "own credential gcp_service_account: done" in ran.stdout, ran.stdout + ran.stderr
    key2 = _one_live_key_the_tool_uses(w)
    assert key2 != key1
    second = _one_live_token_the_tool_holds(w)
    seen.append(second)
    assert second != first and _verify(w, first) == 401 and _verify(w, second) == 200
    resend = w.status()[(RESEND, "shared")]["rotations"][0]
    assert resend["state"] == "validated", resend

    # Production is published in March with the token the tool rotated, then rotated again.
    w.at("2027-03-02T02:30")
    for name in (RESEND, GCP):
        assert w.rotate("approve", name, "--note", "q1", actor="owner@e2e").returncode == 0
    promoted = w.rotate("run")
    assert "own credential" not in promoted.stdout
    resend = w.status()[(RESEND, "shared")]["rotations"][0]
    assert resend["state"] == "promoted", f"{resend}\n{promoted.stdout}\n{promoted.stderr}"
    w.at("2027-03-04T02:30")
    again = w.rotate("run")
    assert "own credential cloudflare_api_token: done" in again.stdout, again.stdout + again.stderr
    assert "own credential gcp_service_account: done" in again.stdout, again.stdout + again.stderr
    assert _one_live_key_the_tool_uses(w) not in (key1, key2)
    third = _one_live_token_the_tool_holds(w)
    seen.append(third)
    assert _verify(w, second) == 401 and _verify(w, third) == 200

    # Month 4: the app's old GCP API key is revoked through IAM with the rotated SA key.
    w.at("2027-04-01T02:30")
    revoked = w.rotate("run")
    gcp = next(r for r in w.status()[(GCP, "shared")]["rotations"] if r["cycle"] == "2027-01")
    assert gcp["state"] in ("revoked", "reviewing", "completed"), (gcp, revoked.stdout)
    checked = w.rotate("check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "gcp_service_account: token exchange works" in checked.stdout

    kinds = [k for k in _audit_types(w) if k.startswith("own.")]
    assert kinds.count("own.rotation.completed") == 5 and "own.credential.imported" in kinds
    assert w.rotate("audit", "verify").returncode == 0
    _no_value_in_any_byte(w, seen + w.issued_values())
    # The private keys are in the key file only (the one the inventory names), never elsewhere.
    _, pems = _google_keys(w)
    body_lines = [line for pem in pems for line in pem.splitlines()[1:-1]]
    _no_value_in_any_byte(w, body_lines[::7])


def test_emergency_own_cloudflare_under_a_leaked_token(world: World) -> None:
    w = world
    leaked = w.sandbox.cloudflare_token
    w.at("2027-01-12T11:00")
    began = time.monotonic()
    done = w.rotate(
        "emergency",
        "--own",
        "cloudflare",
        "--reason",
        "token in a CI log",
        "--yes",
        actor="sec@e2e",
    )
    took = time.monotonic() - began
    assert done.returncode == 0, done.stdout + done.stderr
    assert took < 60, took
    assert "rolled" in done.stdout
    assert _verify(w, leaked) == 401
    new = _one_live_token_the_tool_holds(w)
    # The app's rotations go on with the new token (a Cloudflare target is written).
    ran = w.rotate("emergency", RESEND, "--reason", "drill", "--yes", actor="sec@e2e")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    kinds = _audit_types(w)
    for kind in (
        "own.credential.adopted",
        "own.emergency.started",
        "own.credential.rolled",
        "own.emergency.completed",
    ):
        assert kind in kinds, kind
    assert w.rotate("audit", "verify").returncode == 0
    _no_value_in_any_byte(w, [leaked, new, *w.issued_values()])


def test_check_says_where_the_token_comes_from_and_warns_when_broader(world: World) -> None:
    w = world
    with w.sandbox.world.lock:
        token = live_tokens(w.sandbox.world.cloudflare)[0]
        token.policies[0]["permission_groups"].append(
            {"id": PERMISSION_GROUPS["DNS Write"], "name": "DNS Write"}
        )
    checked = w.rotate("check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "cloudflare_api_token: from environment variable" in checked.stdout
    assert "API Tokens Write" in checked.stdout
    assert "broader than needed: also grants DNS Write" in checked.stderr
    refused = w.rotate("credentials", "import", "cloudflare", input="not-a-token\n")
    assert refused.returncode == 7, refused.stdout + refused.stderr
    assert "refused" in refused.stderr
    unknown = w.rotate("credentials", "import", "nonesuch", input="x\n")
    assert unknown.returncode == 2 and "[credentials]" in unknown.stderr


# ------------------------------------------------------------------ import, emergency, hosts
def _new_service_account_key(w: World) -> tuple[str, str]:
    """A key a person downloads from the console for the tool's account: (id, JSON file)."""
    g = w.sandbox.world.google
    with w.sandbox.world.lock:
        account = w.sandbox.world.service_account
        key = ServiceAccount(
            account.client_email,
            account.project_id,
            secrets.token_hex(20),
            rsa.generate_private_key(public_exponent=65537, key_size=2048),
        )
        g.keys[key.key_id] = key
        g.key_created[key.key_id] = w.sandbox.world.now().strftime("%Y-%m-%dT%H:%M:%SZ")
    return key.key_id, json.dumps(key.key_file(w.sandbox.token_url), indent=2)


def _resend_key(w: World, permission: str) -> str:
    with w.sandbox.world.lock:
        return w.sandbox.world.resend.create("tool", permission, w.sandbox.world.now()).token


def test_import_google_key_and_resend_management_key(world: World) -> None:
    w = world
    text = w.inventory.read_text()
    text = text.replace(
        'options = { permission = "full_access" }',
        'options = { permission = "full_access", management_key = "resend_management" }',
    ).replace("[credentials]\n", '[credentials]\nresend_management = { env = "MGMT_KEY" }\n')
    w.inventory.write_text(text)
    w.env["MGMT_KEY"] = "re_not_a_key_any_more"  # the store's key must win over it

    sending = _resend_key(w, "sending_access")
    refused = w.rotate("credentials", "import", "resend-management", input=sending + "\n")
    assert refused.returncode == 7, refused.stdout + refused.stderr
    assert "sending-only" in refused.stderr
    listed = w.rotate("credentials", "list")
    assert "resend_management" in listed.stdout and "MGMT_KEY" in listed.stdout
    manager = _resend_key(w, "full_access")
    took = w.rotate("credentials", "import", "resend-management", input=manager + "\n")
    assert took.returncode == 0, took.stdout + took.stderr
    assert "verified with Resend" in took.stdout
    assert "the store" in w.rotate("credentials", "list").stdout.split("resend_management")[1]

    not_json = w.rotate("credentials", "import", "google", input="-----BEGIN PRIVATE KEY-----\n")
    assert not_json.returncode == 2 and "not JSON" in not_json.stderr
    key_id, key_file = _new_service_account_key(w)
    imported = w.rotate(
        "credentials", "import", "google", "--json", input=key_file, actor="ops@e2e"
    )
    assert imported.returncode == 0, imported.stdout + imported.stderr
    assert json.loads(imported.stdout) == {
        "credential": "gcp_service_account",
        "key_id": key_id,
        "source": "import:stdin",
        "verified": True,
    }
    on_disk = json.loads((w.inventory.parent / "gcp-service-account.json").read_text())
    assert on_disk["private_key_id"] == key_id

    # Both are used: a Resend emergency manages keys with the imported key (the env var's
    # value is refused by Resend), the check exchanges the imported Google key.
    ran = w.rotate("emergency", RESEND, "--reason", "drill", "--yes", actor="sec@e2e")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    checked = w.rotate("check")
    assert f"token exchange works (key {key_id})" in checked.stdout, checked.stdout
    events = [e for e in _audit_types(w) if e == "own.credential.imported"]
    assert len(events) == 2
    assert w.rotate("audit", "verify").returncode == 0
    pem_lines = json.loads(key_file)["private_key"].splitlines()[1:-1]
    _no_value_in_any_byte(w, [sending, manager, *pem_lines[::5], *w.issued_values()])


def test_emergency_own_google_replaces_the_key_and_tells_a_person(world: World) -> None:
    w = world
    with WebhookReceiver() as hook:
        sandbox_inventory(w.sandbox, w.inventory.parent, webhook_url=hook.url, notify_email=False)
        w.at("2027-01-12T11:00")
        leaked, _ = _google_keys(w)
        began = time.monotonic()
        done = w.rotate(
            "emergency", "--own", "google", "--reason", "key in a gist", "--yes", actor="sec@e2e"
        )
        took = time.monotonic() - began
        assert done.returncode == 0, done.stdout + done.stderr
        assert took < 60, took
        assert "1 notification channel(s) told" in done.stdout
        new = _one_live_key_the_tool_uses(w)
        assert new not in leaked and leaked[0] in w.sandbox.world.google.deleted_keys
        rolled = w.rotate(
            "emergency", "--own", "cloudflare", "--reason", "token in a log", "--yes", "--json"
        )
        assert rolled.returncode == 0, rolled.stdout + rolled.stderr
        assert "1 notification channel(s) told" in json.loads(rolled.stdout)[0]["message"]
        texts = [b["text"] for b in hook.bodies if b.get("event") == "own.emergency"]
    assert len(texts) == 2, hook.bodies
    assert "service-account key was replaced in an emergency (key in a gist)" in texts[0]
    assert leaked[0] in texts[0] and "Cloudflare API token was rolled" in texts[1]
    # The app's GCP key is still managed with the new service-account key.
    ran = w.rotate("emergency", GCP, "--reason", "drill", "--yes", actor="sec@e2e")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    kinds = _audit_types(w)
    assert kinds.count("own.emergency.completed") == 2 and "own.rotation.completed" in kinds
    assert w.rotate("audit", "verify").returncode == 0


def test_a_second_host_uses_the_key_another_host_rotated(world: World) -> None:
    """Hosts share the store; each has its own key file, brought up to the store's key."""
    w = world
    host_b = w.inventory.parent / "host-b"
    host_b.mkdir(mode=0o700)
    b_file = w.sandbox.write_service_account_file(host_b / "sa.json")
    b_inventory = host_b / "inventory.toml"
    b_inventory.write_text(
        w.inventory.read_text().replace(
            str(w.inventory.parent / "gcp-service-account.json"), str(b_file)
        )
    )
    rotated = w.rotate("credentials", "rotate", "google")
    assert rotated.returncode == 0, rotated.stdout + rotated.stderr
    new = _one_live_key_the_tool_uses(w)
    w.env["ROTATOR_INVENTORY"] = str(b_inventory)
    checked = w.rotate("check")
    assert f"token exchange works (key {new})" in checked.stdout, checked.stdout + checked.stderr
    assert json.loads(b_file.read_text())["private_key_id"] == new
    assert oct(b_file.stat().st_mode & 0o777) == "0o600"


def test_two_hosts_never_drive_one_own_rotation_at_once(world: World) -> None:
    """A rotation leased to a runner of another host is left to it until the lease ends."""
    w = world
    w.at("2027-01-12T11:00")
    key_file = (w.inventory.parent / "gcp-service-account.json").read_text()
    assert w.rotate("credentials", "import", "google", input=key_file).returncode == 0
    before, _ = _google_keys(w)
    with sqlite3.connect(w.home / "rotator.db") as conn:
        (old_id,) = conn.execute(
            "SELECT id FROM own_credential WHERE state = 'current' AND name = ?",
            ("gcp_service_account",),
        ).fetchone()
        conn.execute(
            "INSERT INTO own_rotation (id, name, kind, state, reason, old_id, started_at, "
            "claimed_by, claimed_until) VALUES (?, ?, 'scheduled', 'started', '', ?, ?, ?, ?)",
            (
                "r-host-a",
                "gcp_service_account",
                old_id,
                "2027-01-12 10:59:00.000000",
                "host-a/boot/4242/abcd1234",
                "2027-01-12 11:14:00.000000",
            ),
        )
    left = w.rotate("credentials", "rotate", "google")
    assert left.returncode == 10, left.stdout + left.stderr
    assert "driven by runner host-a/boot/4242/abcd1234" in left.stderr
    assert _google_keys(w)[0] == before  # nothing created, nothing deleted
    listed = w.rotate("credentials", "list")
    assert "in flight (started, driven by runner host-a/boot/4242/abcd1234)" in listed.stdout
    ran = w.rotate("run")
    assert "own credential gcp_service_account: retrying" in ran.stderr, ran.stdout + ran.stderr
    assert _google_keys(w)[0] == before

    w.at("2027-01-12T11:20")  # host A's lease has run out: its rotation is resumed here
    resumed = w.rotate("credentials", "rotate", "google", "--json")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert json.loads(resumed.stdout)["rotation"] == "r-host-a"
    assert _one_live_key_the_tool_uses(w) not in before
