"""The tool's own Cloudflare API token: verify, rotate by overlap, roll in an emergency.

Rotation by overlap, each beat recorded (intent → effect → result) in `own_rotation`:

1. *started*: the intent, with the name the new token will have
   (`rotator-own-<rotation id>`), recorded before anything is created;
2. the new token is created with the current token's policies (or, when resuming, found
   again by that name and rolled, since its value was never recorded: it serves nobody);
   the value is stored encrypted as *pending* → *created*;
3. it is verified (`GET /user/tokens/verify`), then it becomes *current* and the old one
   *previous*, in one transaction → *switched*: every later use reads the new one;
4. the old token is deleted with the new one and proved refused → *done*.

A crash anywhere leaves the old token live and held until step 3, and the new one live
and held after it: never zero. An emergency rolls the leaked token instead (`PUT
/user/tokens/{id}/value`): the old value dies at once and the new one is stored in the
transaction that follows the answer, before any other call.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from rotator import machine as m
from rotator.errors import NeedsPersonError, ProviderRefusedError, RefusedError, RetryLaterError
from rotator.own import store as own
from rotator.own.models import OwnRotation
from rotator.secret import Secret
from rotator.targets.cloudflare import DEFAULT_BASE_URL

if TYPE_CHECKING:
    from rotator.engine import Engine
    from rotator.own.models import OwnCredential

NAME = "cloudflare_api_token"
SERVICE = "cloudflare-tokens"
TOKEN_PREFIX = "rotator-own-"  # noqa: S105 (a name prefix)
NEEDED = ("Workers Scripts Write", "Pages Write", "API Tokens Write")
"""The permission groups the tool needs (docs/operator-guide.md, "Least privilege")."""
WHY = {
    "Workers Scripts Write": "set Workers secrets (cloudflare-workers targets)",
    "Pages Write": "set Pages variables and redeploy (cloudflare-pages targets)",
    "API Tokens Write": "rotate this token itself (create, verify, delete, roll)",
}


class TokenApi:
    """Cloudflare's `/user/tokens` endpoints, called with an explicit token."""

    def __init__(self, engine: Engine) -> None:
        rt = engine.rt
        self.rt = rt
        urls = rt.inventory.targets.get("cloudflare", {})
        self.base_url = str(urls.get("base_url", DEFAULT_BASE_URL)).rstrip("/")

    def call(
        self,
        method: str,
        path: str,
        token: Secret,
        *,
        operation: str,
        idempotent: bool,
        json_body: Any = None,
        missing_ok: bool = False,
    ) -> Any:
        response = self.rt.http.request(
            method,
            f"{self.base_url}{path}",
            provider="cloudflare",
            operation=operation,
            idempotent=idempotent,
            headers={"Authorization": f"Bearer {token.reveal()}"},
            json=json_body,
        )
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and body.get("success") is True and status < 400:
            return body.get("result")
        if missing_ok and status == 404:
            return None
        detail = _detail(body)
        if status >= 500 or status == 429:
            raise RetryLaterError(
                f"Cloudflare failed {operation}{detail}",
                provider=SERVICE,
                operation=operation,
                status=status,
            )
        raise ProviderRefusedError(
            f"Cloudflare refused {operation}{detail}",
            provider=SERVICE,
            operation=operation,
            status=status,
        )

    def verify(self, token: Secret) -> str:
        """Return the id of an active token; refuse an unknown, rolled or deleted one."""
        result = self.call("GET", "/user/tokens/verify", token, operation="verify", idempotent=True)
        if not isinstance(result, dict) or result.get("status") != "active":
            raise ProviderRefusedError(
                "Cloudflare says the token is not active", provider=SERVICE, operation="verify"
            )
        return str(result["id"])

    def refused(self, token: Secret) -> bool:
        """True when Cloudflare refuses the token (proof that it is revoked)."""
        try:
            self.verify(token)
        except ProviderRefusedError:
            return True
        return False

    def get(self, token: Secret, token_id: str) -> dict[str, Any]:
        result = self.call(
            "GET", f"/user/tokens/{token_id}", token, operation="get token", idempotent=True
        )
        return dict(result or {})

    def find(self, token: Secret, name: str) -> dict[str, Any] | None:
        result = self.call("GET", "/user/tokens", token, operation="list tokens", idempotent=True)
        return next((t for t in result or [] if t.get("name") == name), None)

    def create(
        self, token: Secret, name: str, policies: list[dict[str, Any]]
    ) -> tuple[str, Secret]:
        body = {"name": name, "policies": policies}
        result = self.call(
            "POST",
            "/user/tokens",
            token,
            operation="create token",
            idempotent=False,
            json_body=body,
        )
        return str(result["id"]), Secret(str(result["value"]))

    def roll(self, token: Secret, token_id: str) -> Secret:
        result = self.call(
            "PUT",
            f"/user/tokens/{token_id}/value",
            token,
            operation="roll token",
            idempotent=False,
            json_body={},
        )
        return Secret(str(result))

    def delete(self, token: Secret, token_id: str) -> bool:
        """Delete a token; False when it was already gone."""
        result = self.call(
            "DELETE",
            f"/user/tokens/{token_id}",
            token,
            operation="delete token",
            idempotent=True,
            missing_ok=True,
        )
        return result is not None


def _detail(body: Any) -> str:
    if not isinstance(body, dict):
        return ""
    parts = [
        f"{e.get('code')} {e.get('message')}"
        for e in body.get("errors") or []
        if isinstance(e, dict)
    ]
    from rotator.redact import scrub

    return f": {scrub('; '.join(parts))}" if parts else ""


def copy_policies(token: dict[str, Any]) -> list[dict[str, Any]]:
    """The policies of a token as a create body takes them (ids of permission groups)."""
    policies = []
    for policy in token.get("policies") or []:
        policies.append(
            {
                "effect": policy.get("effect", "allow"),
                "resources": dict(policy.get("resources") or {}),
                "permission_groups": [
                    {"id": g["id"]} for g in policy.get("permission_groups") or []
                ],
            }
        )
    if not policies:
        raise ProviderRefusedError(
            "the current token shows no policies to copy; create the new token by hand "
            "(docs/operator-guide.md) and `rotate credentials import cloudflare`",
            provider=SERVICE,
            operation="get token",
        )
    return policies


# ------------------------------------------------------------------ holding a token
def held(engine: Engine) -> tuple[OwnCredential, Secret]:
    """Return the current own-credential row and its value, adopting env/file at first use.

    A token read from the environment variable or file is verified (to learn its id),
    stored encrypted with that provenance, and from then on read from the store.
    """
    rt = engine.rt
    with rt.store.read() as s:
        row = own.current_row(s, NAME)
    if row is not None:
        return row, own.reveal(rt, row)
    value = rt.credentials.configured(NAME)
    token_id = TokenApi(engine).verify(value)
    ref = rt.inventory.credentials[NAME]
    source = f"env:{ref.env}" if ref.env else f"file:{ref.file}"
    return record_import(engine, value, token_id, source=source, event="own.credential.adopted")


def record_import(
    engine: Engine, value: Secret, token_id: str, *, source: str, event: str
) -> tuple[OwnCredential, Secret]:
    """Store a verified token as current (the previous current, if any, stays live)."""
    row = own.record_held(
        engine, NAME, value, token_id, source=source, event=event, ref_name="token_id"
    )
    return row, value


# ------------------------------------------------------------------ rotation by overlap
def rotate(engine: Engine, *, kind: str = "manual", reason: str = "") -> dict[str, Any]:
    """Rotate the tool's Cloudflare token by overlap, or resume the rotation in flight."""
    rt = engine.rt
    api = TokenApi(engine)
    old_row, _ = _held_or_in_flight(engine)
    with own.starting(rt, NAME) as s:
        rotation = own.in_flight(s, NAME)
        resumed = rotation is not None
        if rotation is None:
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
                old_token_id=old_row.provider_ref,
                new_token_name=TOKEN_PREFIX + rotation.id,
            )
            s.flush()
        elif rotation.kind == "emergency":
            raise RefusedError(
                "an emergency of the tool's Cloudflare token is in flight; run "
                "`rotate emergency --own cloudflare --reason ...` again to finish it"
            )
        own.claim(s, rt, rotation.id)
    with own.driving(engine, rotation.id):
        return _overlap(engine, api, rotation.id, kind, resumed=resumed)


def _overlap(
    engine: Engine, api: TokenApi, rid: str, kind: str, *, resumed: bool
) -> dict[str, Any]:
    """Create, verify, switch, delete: each beat from where the rotation stands."""
    rt = engine.rt
    rotation = _rotation(engine, rid)
    state = rotation.state
    old = _row(engine, rotation.old_id)
    old_value = own.reveal(rt, old)
    if state == "started":
        state = _create(engine, api, rid, old, old_value, resumed=resumed)
    new = _row(engine, _rotation(engine, rid).new_id)
    new_value = own.reveal(rt, new)
    if state == "created":
        token_id = api.verify(new_value)
        if token_id != new.provider_ref:
            raise ProviderRefusedError(
                f"the new token verifies as {token_id}, not {new.provider_ref}",
                provider=SERVICE,
                operation="verify",
            )
        own.record_switch(
            engine,
            rid,
            old.id,
            new.id,
            NAME,
            token_id=new.provider_ref,
            previous_token_id=old.provider_ref,
        )
        state = "switched"
    if state == "switched":
        deleted = api.delete(new_value, str(old.provider_ref))
        if not api.refused(old_value):
            raise RetryLaterError(
                "the old token still verifies after its deletion; run again to check",
                provider=SERVICE,
                operation="verify revoked",
            )
        own.record_retired(
            engine, rid, old.id, NAME, kind, token_id=old.provider_ref, deleted_now=deleted
        )
    return {
        "credential": NAME,
        "rotation": rid,
        "state": "done",
        "old_token_id": old.provider_ref,
        "new_token_id": new.provider_ref,
        "resumed": resumed,
    }


def _held_or_in_flight(engine: Engine) -> tuple[OwnCredential, Secret]:
    with engine.rt.store.read() as s:
        rotation = own.in_flight(s, NAME)
    if rotation is not None and rotation.old_id:
        row = _row(engine, rotation.old_id)
        return row, own.reveal(engine.rt, row)
    return held(engine)


def _create(
    engine: Engine, api: TokenApi, rid: str, old: OwnCredential, old_value: Secret, *, resumed: bool
) -> str:
    rt = engine.rt
    name = TOKEN_PREFIX + rid
    found = api.find(old_value, name) if resumed else None
    if found is not None:
        # Created by an attempt that died before recording it: its value was never held
        # and nothing uses it, so a roll gives the value without a second token.
        token_id = str(found["id"])
        value = api.roll(old_value, token_id)
        how = "found by name and rolled"
    else:
        policies = copy_policies(api.get(old_value, str(old.provider_ref)))
        token_id, value = api.create(old_value, name, policies)
        how = "created"
    with rt.store.write() as s:
        r = s.get(OwnRotation, rid)
        assert r is not None
        row = own.make_row(
            rt,
            NAME,
            value,
            state="pending",
            source=f"rotation:{rid}",
            provider_ref=token_id,
            rotation_id=rid,
            notes={"name": name},
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
            token_id=token_id,
            token_name=name,
            fingerprint=row.fingerprint,
            how=how,
        )
    return "created"


def _row(engine: Engine, row_id: str | None) -> OwnCredential:
    from rotator.own.models import OwnCredential

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


# ------------------------------------------------------------------ emergency (roll)
def emergency(engine: Engine, reason: str) -> dict[str, Any]:
    """Roll a leaked tool token: its value dies at once; the new one is stored first."""
    rt = engine.rt
    api = TokenApi(engine)
    with rt.store.read() as s:
        rotation = own.in_flight(s, NAME)
    if rotation is not None and rotation.kind != "emergency":
        # An overlap rotation in flight: the leaked value may be the old or the new one.
        # Finish it first (it deletes the old), then roll the one left.
        rotate(engine)
        rotation = None
    if rotation is None:
        old, _ = held(engine)
        with own.starting(rt, NAME) as s:
            rotation = OwnRotation(
                id=own.new_id(),
                name=NAME,
                kind="emergency",
                state="rolling",
                reason=reason,
                old_id=old.id,
                started_at=rt.clock(),
            )
            s.add(rotation)
            engine.audit(
                s,
                "own.emergency.started",
                rotation_id=rotation.id,
                credential=NAME,
                reason=reason,
                token_id=old.provider_ref,
            )
            s.flush()
            own.claim(s, rt, rotation.id)
    else:
        with rt.store.write() as s:
            own.claim(s, rt, rotation.id)
    with own.driving(engine, rotation.id):
        return _roll(engine, api, rotation.id, reason)


def _roll(engine: Engine, api: TokenApi, rid: str, reason: str) -> dict[str, Any]:
    """Roll, record, verify, prove refused, notify: each beat from where the emergency stands."""
    rt = engine.rt
    rotation = _rotation(engine, rid)
    old = _row(engine, rotation.old_id)
    old_value = own.reveal(rt, old)
    if rotation.state == "rolling":
        if api.refused(old_value):
            # The roll (ours, or whoever holds the leak) killed the value we hold and its
            # answer was never recorded: only a person can make a new token now.
            raise NeedsPersonError(
                "the tool's Cloudflare token is refused and no new value was recorded: create "
                "a token with the permissions in docs/operator-guide.md (Least privilege) in "
                "the dashboard, then `rotate credentials import cloudflare` (stdin), and "
                "delete the old token there",
                provider=SERVICE,
                operation="roll token",
            )
        new_value = api.roll(old_value, str(old.provider_ref))
        # Persisted before anything else: the old value no longer works.
        with rt.store.write() as s:
            r = s.get(OwnRotation, rid)
            o = s.get(type(old), old.id)
            assert r is not None and o is not None
            m.move_version(o, "revoked")
            o.revoked_at = rt.clock()
            s.add(o)
            s.flush()
            new = own.make_row(
                rt,
                NAME,
                new_value,
                state="current",
                source=f"emergency:{rid}",
                provider_ref=old.provider_ref,
                rotation_id=rid,
            )
            s.add(new)
            r.new_id = new.id
            m.move_own_rotation(r, "rolled")
            s.add(r)
            engine.audit(
                s,
                "own.credential.rolled",
                rotation_id=rid,
                credential=NAME,
                token_id=old.provider_ref,
                fingerprint=new.fingerprint,
                previous_fingerprint=old.fingerprint,
            )
        rotation = _rotation(engine, rid)
    new = _row(engine, rotation.new_id)
    new_value = own.reveal(rt, new)
    api.verify(new_value)
    refused = api.refused(old_value)
    if not refused:
        raise RetryLaterError(
            "the leaked token still verifies after the roll; run the emergency again",
            provider=SERVICE,
            operation="verify revoked",
        )
    from rotator import notify

    text = (
        f"The tool's own Cloudflare API token was rolled in an emergency ({reason or 'no reason'}"
        f"). Token id {old.provider_ref}: the leaked value is refused by Cloudflare; the new "
        "value is held encrypted by rotator. Check the token's activity in the Cloudflare "
        "audit log for the time the leaked value was valid."
    )
    failed = notify.send(engine, "own.emergency", text)
    notified = len(rt.inventory.notifications) - len(failed)
    with rt.store.write() as s:
        r = s.get(OwnRotation, rid)
        assert r is not None
        m.move_own_rotation(r, "done")
        r.finished_at = rt.clock()
        s.add(r)
        engine.audit(
            s,
            "own.emergency.completed",
            rotation_id=rid,
            credential=NAME,
            token_id=old.provider_ref,
            verified_refused=True,
            notified=notified,
            failed_channels=json.dumps(failed),
        )
    return {
        "credential": NAME,
        "rotation": rid,
        "state": "done",
        "token_id": old.provider_ref,
        "old_value_refused": True,
        "notified": notified,
    }


# ------------------------------------------------------------------ least privilege
def privileges(engine: Engine) -> dict[str, Any]:
    """Read the current token's permission groups; name what is missing and what is extra."""
    rt = engine.rt
    api = TokenApi(engine)
    value = rt.credentials.secret(NAME)
    token_id = api.verify(value)
    try:
        token = api.get(value, token_id)
    except ProviderRefusedError:
        return {"token_id": token_id, "readable": False, "missing": [], "extra": []}
    granted = sorted(
        {
            str(g.get("name"))
            for p in token.get("policies") or []
            if p.get("effect") == "allow"
            for g in p.get("permission_groups") or []
        }
    )
    return {
        "token_id": token_id,
        "readable": True,
        "granted": granted,
        "missing": [n for n in NEEDED if n not in granted],
        "extra": [n for n in granted if n not in NEEDED],
    }
