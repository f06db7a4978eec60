"""`rotate credentials import`: a person hands the tool one of its own credentials.

Each kind is verified with its provider before anything is written, so a wrong value
changes nothing: the Cloudflare token by `GET /user/tokens/verify`, the Google
service-account key by a token exchange, a Resend management key by listing API keys
(which Resend refuses a sending-only key with 401 `restricted_api_key`). The value is then
stored encrypted as current, audited with its provenance; the Google key is also written
over the key file the inventory names, since every use of it reads that file.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rotator.errors import BadInputError, ProviderRefusedError, RetryLaterError
from rotator.own import cloudflare, google
from rotator.own import store as own
from rotator.secret import Secret

if TYPE_CHECKING:
    from rotator.engine import Engine
    from rotator.runtime import Runtime

RESEND_MANAGEMENT = ("resend-management", "resend_management")
"""The alias of the key named by a Resend secret's `options.management_key`."""
RESEND_URL = "https://api.resend.com"
SUPPORTED = "cloudflare, google, resend-management"


@dataclass(frozen=True)
class Imported:
    credential: str
    kind: str
    provider_ref: str | None
    how: str
    """What the provider said, in words (printed and audited)."""


def resend_management_names(rt: Runtime) -> list[str]:
    """The `[credentials]` names a Resend secret manages its keys with."""
    return sorted(
        {
            str(spec.options["management_key"])
            for spec in rt.inventory.secrets.values()
            if spec.provider == "resend" and spec.options.get("management_key")
        }
    )


def resolve(rt: Runtime, name: str) -> tuple[str, str]:
    """Return the `[credentials]` name and its kind (cloudflare, google, resend)."""
    managers = resend_management_names(rt)
    if name in RESEND_MANAGEMENT:
        if len(managers) != 1:
            why = (
                "no Resend secret names options.management_key"
                if not managers
                else f"several Resend management keys are named ({', '.join(managers)})"
            )
            raise BadInputError(f"--{name}: {why}; give the [credentials] name of the key instead")
        name = managers[0]
    resolved = own.check_name(rt, name)
    if resolved == cloudflare.NAME:
        return resolved, "cloudflare"
    if resolved == google.NAME:
        return resolved, "google"
    if resolved in managers:
        return resolved, "resend"
    raise BadInputError(
        f"{resolved!r} cannot be imported: the tool verifies and holds only {SUPPORTED} "
        "(a Resend key named by options.management_key); keep it in the environment "
        "variable or file [credentials] names"
    )


def read(
    kind: str, read_line: Callable[[], Secret], read_stdin: Callable[[], Secret], interactive: bool
) -> Secret:
    """Read the value: one line for a token; a whole JSON file for the Google key.

    A service-account key file spans many lines, so it cannot be typed at a hidden
    prompt: it is piped (`rotate credentials import google < key.json`).
    """
    if kind != "google":
        return read_line()
    if interactive:
        raise BadInputError(
            "a service-account key is a JSON file of many lines: pipe it in, e.g. "
            "`rotate credentials import google < key.json`, then delete that copy"
        )
    text = read_stdin()
    if not text.reveal().strip():
        raise BadInputError("nothing was read from stdin; pipe the service-account key file")
    return text


def verify_and_store(engine: Engine, name: str, kind: str, value: Secret, source: str) -> Imported:
    """Verify `value` with its provider, then store it as current (nothing written if refused)."""
    event = "own.credential.imported"
    if kind == "cloudflare":
        token_id = cloudflare.TokenApi(engine).verify(value)
        cloudflare.record_import(engine, value, token_id, source=source, event=event)
        return Imported(name, kind, token_id, f"verified with Cloudflare (token id {token_id})")
    if kind == "google":
        key = _service_account(value)
        google.Iam(engine).exchange(key)
        own.record_held(
            engine, name, value, key.private_key_id, source=source, event=event, ref_name="key_id"
        )
        # Recorded first: a crash before the file is written is mended at the next use, which
        # writes the store's current key over a key file that differs (credentials.path).
        google.write_key_file(engine, value)
        return Imported(
            name,
            kind,
            key.private_key_id,
            f"a token exchange works for {key.client_email} (key {key.private_key_id}); "
            "the key file is replaced",
        )
    verify_resend(engine, value)
    own.record_held(engine, name, value, None, source=source, event=event, ref_name="key_id")
    return Imported(name, kind, None, "verified with Resend (a full-access key)")


def _service_account(value: Secret) -> Any:
    try:
        raw = json.loads(value.reveal())
    except ValueError:
        raise BadInputError(
            "what was read is not JSON: pipe the service-account key file as Google gave it"
        ) from None
    fields = ("client_email", "private_key", "private_key_id")
    if not isinstance(raw, dict) or raw.get("type", "service_account") != "service_account":
        raise BadInputError(
            "what was read is not a service-account key file (its type must be "
            '"service_account"); a Workload Identity Federation configuration is not a key'
        )
    missing = [f for f in fields if not isinstance(raw.get(f), str) or not raw.get(f)]
    if missing:
        raise BadInputError(f"the service-account key file lacks {', '.join(missing)}")
    return google.parse_key(value, "the key read from stdin")


def verify_resend(engine: Engine, value: Secret) -> None:
    """A full-access Resend key may list keys; a sending-only one is refused that."""
    rt = engine.rt
    base = str(rt.inventory.providers.get("resend", {}).get("base_url") or RESEND_URL)
    response = rt.http.request(
        "GET",
        f"{base.rstrip('/')}/api-keys",
        provider="resend",
        operation="verify",
        idempotent=True,
        headers={"Authorization": f"Bearer {value.reveal()}"},
        params={"limit": 1},
    )
    status = response.status_code
    if status < 300:
        return
    try:
        body = response.json()
    except ValueError:
        body = {}
    code = body.get("name") if isinstance(body, dict) else None
    if status == 429 or status >= 500:
        raise RetryLaterError(
            f"Resend failed the check ({status}); try again",
            provider="resend",
            operation="verify",
            status=status,
        )
    if code == "restricted_api_key":
        raise ProviderRefusedError(
            "Resend says this is a sending-only key (restricted_api_key): it cannot manage "
            "keys. Create a full-access key (API Keys → Create, permission Full access)",
            provider="resend",
            operation="verify",
            status=status,
        )
    raise ProviderRefusedError(
        f"Resend refused the key ({status} {code or 'no error name'})",
        provider="resend",
        operation="verify",
        status=status,
    )
