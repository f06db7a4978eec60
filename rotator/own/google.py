"""The tool's own Google service-account key: rotated by overlap through IAM.

Each beat recorded in `own_rotation` (intent → effect → result):

1. *started*: the intent, with the old key's id, before anything is created;
2. a new key for the same service account (`keys.create`), stored encrypted as
   *pending* → *created*; when resuming, a key created after the intent and never
   recorded (its private part was lost with the process) is deleted first;
3. the new key proved by a token exchange, written over the key file `[credentials]`
   names (atomic, 0600: the file every use reads), then *current* → *switched*;
4. the old key deleted (`keys.delete`) with a token from the new key and proved refused
   by a token exchange → *done*.

The key file keeps the key in clear, as the deployment chose for it; the store keeps
an encrypted copy with provenance, like every own credential.
"""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from providers.base import error_codes, json_body, raise_for
from providers.google_auth import DEFAULT_TOKEN_URL, ServiceAccountKey, sign_assertion
from rotator import machine as m
from rotator.clock import as_utc
from rotator.errors import ProviderRefusedError, RetryLaterError
from rotator.own import store as own
from rotator.own.models import OwnCredential, OwnRotation
from rotator.secret import Secret

if TYPE_CHECKING:
    from rotator.engine import Engine

NAME = "gcp_service_account"
SERVICE = "gcp-iam"
LIMIT = "gcp-identity"
DEFAULT_IAM_URL = "https://iam.googleapis.com"


def parse_key(text: Secret, where: str) -> ServiceAccountKey:
    try:
        raw = json.loads(text.reveal())
        return ServiceAccountKey(
            Path(where),
            str(raw["client_email"]),
            Secret(str(raw["private_key"])),
            str(raw["private_key_id"]),
            str(raw.get("token_uri") or DEFAULT_TOKEN_URL),
        )
    except (ValueError, KeyError, TypeError):
        raise ProviderRefusedError(
            f"{where} is not a service-account JSON key file",
            provider=SERVICE,
            operation="read key",
        ) from None


class Iam:
    def __init__(self, engine: Engine) -> None:
        self.rt = engine.rt
        urls = self.rt.inventory.providers.get("gcp-identity", {})
        self.iam_url = str(urls.get("iam_url", DEFAULT_IAM_URL)).rstrip("/")
        self.token_url = urls.get("token_url")

    def exchange(self, key: ServiceAccountKey) -> Secret:
        """Prove a key by a token exchange (never cached); refuse a deleted one."""
        url = self.token_url or key.token_uri
        now = int(self.rt.clock().timestamp())
        response = self.rt.http.request(
            "POST",
            url,
            provider=LIMIT,
            operation="auth",
            idempotent=True,
            data={
                "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                "assertion": sign_assertion(key, url, now, provider=SERVICE),
            },
        )
        if response.status_code in (400, 401) and "invalid_grant" in error_codes(response):
            raise ProviderRefusedError(
                f"Google refused the key {key.private_key_id} (invalid_grant)",
                provider=SERVICE,
                operation="auth",
                status=response.status_code,
            )
        raise_for(response, SERVICE, "auth")
        token = json_body(response, SERVICE, "auth").get("access_token")
        if not isinstance(token, str) or not token:
            raise ProviderRefusedError("no access_token", provider=SERVICE, operation="auth")
        return Secret(token)

    def refused(self, key: ServiceAccountKey) -> bool:
        try:
            self.exchange(key)
        except ProviderRefusedError:
            return True
        return False

    def _keys_url(self, key: ServiceAccountKey) -> str:
        return (
            f"{self.iam_url}/v1/projects/-/serviceAccounts/{quote(key.client_email, safe='@')}/keys"
        )

    def call(
        self,
        method: str,
        url: str,
        token: Secret,
        operation: str,
        *,
        idempotent: bool,
        body: Any = None,
        missing_ok: bool = False,
    ) -> dict[str, Any]:
        response = self.rt.http.request(
            method,
            url,
            provider=LIMIT,
            operation=operation,
            idempotent=idempotent,
            headers={"Authorization": f"Bearer {token.reveal()}"},
            json=body,
        )
        if missing_ok and response.status_code == 404:
            return {}
        raise_for(response, SERVICE, operation)
        return json_body(response, SERVICE, operation)

    def create(self, key: ServiceAccountKey, token: Secret) -> tuple[str, Secret]:
        answer = self.call(
            "POST",
            self._keys_url(key),
            token,
            "keys.create",
            idempotent=False,
            body={"privateKeyType": "TYPE_GOOGLE_CREDENTIALS_FILE"},
        )
        try:
            text = base64.b64decode(str(answer["privateKeyData"])).decode("utf-8")
        except (KeyError, binascii.Error, UnicodeDecodeError):
            raise ProviderRefusedError(
                "keys.create answered without a key file", provider=SERVICE, operation="keys.create"
            ) from None
        return str(answer.get("name", "")).rsplit("/", 1)[-1], Secret(text)

    def list(self, key: ServiceAccountKey, token: Secret) -> list[dict[str, Any]]:
        answer = self.call("GET", self._keys_url(key), token, "keys.list", idempotent=True)
        return list(answer.get("keys") or [])

    def delete(self, key: ServiceAccountKey, token: Secret, key_id: str) -> None:
        """Delete a key; one already gone (404) counts as deleted."""
        self.call(
            "DELETE",
            f"{self._keys_url(key)}/{key_id}",
            token,
            "keys.delete",
            idempotent=True,
            missing_ok=True,
        )


def _file(engine: Engine) -> Path:
    """The key file as it is: not brought up to the store's key (the rotation's own
    steps decide what it holds; between writing it and recording the switch, syncing
    would put the old key back)."""
    return engine.rt.credentials.path(NAME, synced=False)


def write_key_file(engine: Engine, text: Secret) -> None:
    """Write the key over the key file every use reads (atomic, 0600); forget old tokens."""
    from providers.google_auth import clear_token_cache
    from rotator.safefile import write_private

    write_private(_file(engine), text.reveal())
    clear_token_cache()


def held(engine: Engine) -> tuple[OwnCredential, Secret]:
    """The current row and key file text; the key file is adopted at first use."""
    rt = engine.rt
    with rt.store.read() as s:
        row = own.current_row(s, NAME)
    if row is not None:
        return row, own.reveal(rt, row)
    path = _file(engine)
    text = Secret(path.read_text(encoding="utf-8"))
    key = parse_key(text, str(path))
    Iam(engine).exchange(key)
    with rt.store.write() as s:
        row = own.make_row(
            rt, NAME, text, state="current", source=f"file:{path}", provider_ref=key.private_key_id
        )
        s.add(row)
        engine.audit(
            s,
            "own.credential.adopted",
            credential=NAME,
            source=row.source,
            key_id=key.private_key_id,
            fingerprint=row.fingerprint,
        )
    return row, text


def rotate(engine: Engine, *, kind: str = "manual", reason: str = "") -> dict[str, Any]:
    """Rotate the service-account key by overlap, or resume the rotation in flight.

    The old key is deleted as soon as the new one is switched to: every use reads the key
    file (brought up to the store's key on each host, `credentials.path`), so no grace is
    needed, and a leaked key (`kind="emergency"`) must not outlive the switch.
    """
    rt = engine.rt
    iam = Iam(engine)
    with rt.store.read() as s:
        rotation = own.in_flight(s, NAME)
    if rotation is None:
        old_row, _ = held(engine)
        with own.starting(rt, NAME) as s:
            rotation = OwnRotation(
                id=own.new_id(),
                name=NAME,
                kind=kind,
                state="started",
                reason=reason,
                old_id=old_row.id,
                started_at=rt.clock(),
            )
            s.add(rotation)
            engine.audit(
                s,
                "own.rotation.started",
                rotation_id=rotation.id,
                credential=NAME,
                kind=kind,
                reason=reason,
                old_key_id=old_row.provider_ref,
            )
            s.flush()
            own.claim(s, rt, rotation.id)
        resumed = False
    else:
        with rt.store.write() as s:
            own.claim(s, rt, rotation.id)
        resumed = True
    with own.driving(engine, rotation.id):
        return _overlap(engine, iam, rotation.id, kind, resumed=resumed)


def _overlap(engine: Engine, iam: Iam, rid: str, kind: str, *, resumed: bool) -> dict[str, Any]:
    """Create, prove, switch, delete: each beat from where the rotation stands."""
    rt = engine.rt
    rotation = _rotation(engine, rid)
    old = _row(engine, rotation.old_id)
    old_key = parse_key(own.reveal(rt, old), "the stored key")
    state = rotation.state
    if state == "started":
        token = iam.exchange(old_key)
        how = "created"
        if resumed:
            known = _known_ids(engine)
            started = as_utc(rotation.started_at)
            for item in iam.list(old_key, token):
                key_id = str(item.get("name", "")).rsplit("/", 1)[-1]
                after = str(item.get("validAfterTime", ""))
                if key_id in known or not after:
                    continue
                if as_utc(_parse(after)) >= started.replace(microsecond=0):
                    iam.delete(old_key, token, key_id)
                    how = f"created (an unrecorded key {key_id} of an earlier attempt deleted)"
        key_id, text = iam.create(old_key, token)
        with rt.store.write() as s:
            r = s.get(OwnRotation, rid)
            assert r is not None
            row = own.make_row(
                rt,
                NAME,
                text,
                state="pending",
                source=f"rotation:{rid}",
                provider_ref=key_id,
                rotation_id=rid,
            )
            s.add(row)
            r.new_id = row.id
            m.move_own_rotation(r, "created")
            s.add(r)
            engine.audit(
                s,
                "own.credential.created",
                rotation_id=rid,
                credential=NAME,
                key_id=key_id,
                fingerprint=row.fingerprint,
                how=how,
            )
        state = "created"
    new = _row(engine, _rotation(engine, rid).new_id)
    new_text = own.reveal(rt, new)
    new_key = parse_key(new_text, "the new key")
    if state == "created":
        iam.exchange(new_key)
        write_key_file(engine, new_text)
        own.record_switch(
            engine,
            rid,
            old.id,
            new.id,
            NAME,
            key_id=new.provider_ref,
            previous_key_id=old.provider_ref,
            written_to=str(_file(engine)),
        )
        state = "switched"
    if state == "switched":
        token = iam.exchange(new_key)
        iam.delete(new_key, token, str(old.provider_ref))
        if not iam.refused(old_key):
            raise RetryLaterError(
                "the old key still gets tokens after its deletion; run again to check",
                provider=SERVICE,
                operation="verify revoked",
            )
        own.record_retired(engine, rid, old.id, NAME, kind, key_id=old.provider_ref)
    return {
        "credential": NAME,
        "rotation": rid,
        "state": "done",
        "old_key_id": old.provider_ref,
        "new_key_id": new.provider_ref,
        "resumed": resumed,
    }


def emergency(engine: Engine, reason: str) -> dict[str, Any]:
    """Replace a leaked service-account key now: a new key first, the old one deleted and
    proved refused, a person told. Running it again resumes an emergency in flight."""
    from rotator import notify

    with engine.rt.store.read() as s:
        rotation = own.in_flight(s, NAME)
    if rotation is not None and rotation.kind != "emergency":
        # An overlap rotation in flight: the leak may be its old or its new key. Finish it
        # (the old key goes), then replace the one left as well.
        rotate(engine, kind=rotation.kind)
    result = rotate(engine, kind="emergency", reason=reason)
    text = (
        f"The tool's Google service-account key was replaced in an emergency ({reason}). Key "
        f"{result['old_key_id']} is deleted and Google refuses it; key {result['new_key_id']} "
        "is in the key file and held encrypted by rotator. Check the service account's "
        "activity in Cloud Audit Logs for the time the leaked key was valid."
    )
    failed = notify.send(engine, "own.emergency", text)
    notified = len(engine.rt.inventory.notifications) - len(failed)
    with engine.rt.store.write() as s:
        engine.audit(
            s,
            "own.emergency.completed",
            rotation_id=result["rotation"],
            credential=NAME,
            key_id=result["old_key_id"],
            verified_refused=True,
            notified=notified,
            failed_channels=json.dumps(failed),
        )
    return {**result, "old_value_refused": True, "notified": notified}


def prove(engine: Engine) -> str:
    """Prove the key file in use by a token exchange (for `rotate check`); return its id."""
    path = engine.rt.credentials.path(NAME)
    key = parse_key(Secret(path.read_text(encoding="utf-8")), str(path))
    Iam(engine).exchange(key)
    return key.private_key_id


def _parse(text: str) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _known_ids(engine: Engine) -> set[str]:
    with engine.rt.store.read() as s:
        return {str(r.provider_ref) for r in own.rows(s, NAME) if r.provider_ref}


def _row(engine: Engine, row_id: str | None) -> OwnCredential:
    with engine.rt.store.read() as s:
        row = s.get(OwnCredential, row_id) if row_id else None
    if row is None:
        raise RuntimeError(f"own credential row {row_id} is missing")
    return row


def _rotation(engine: Engine, rid: str) -> OwnRotation:
    with engine.rt.store.read() as s:
        r = s.get(OwnRotation, rid)
    assert r is not None
    return r
