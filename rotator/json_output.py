"""State the shape of every command's `--json` output: schema version 1.

Within a version, fields may be added; a field is never removed, renamed or retyped
without a new version. Times are ISO 8601 in UTC (`+00:00` or `Z`); human output shows
them in the inventory's zone. `python -m rotator.json_output` prints the whole document
(JSON Schema, draft 2020-12 keywords: `type`, `required`, `properties`, `items`, `enum`).
`docs/json.md` explains it; `tests/reliability/test_json_schema.py` checks each command's
real output against it.
"""

from __future__ import annotations

import json
from typing import Any

SCHEMA_VERSION = 1

_STR: dict[str, Any] = {"type": "string"}
_OPT_STR: dict[str, Any] = {"type": ["string", "null"]}
_INT: dict[str, Any] = {"type": "integer"}
_BOOL: dict[str, Any] = {"type": "boolean"}


def _obj(required: dict[str, Any], **optional: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "required": sorted(required),
        "properties": {**required, **optional},
    }


def _list(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": item}


OUTCOMES = _list(
    _obj(
        {
            "unit": _STR,
            "status": {"enum": ["done", "waiting", "person", "failed", "retrying", "claimed"]},
            "steps": _list(_STR),
            "message": _STR,
            "until": _OPT_STR,
        }
    )
)
"""`run`, `emergency`, `supply`, `confirm`, `resume`, `rollback`, `abort`: one per unit."""

SCHEMAS: dict[str, dict[str, Any]] = {
    "init": _obj({"written": _list(_STR)}),
    "check": _obj(
        {
            "inventory": _STR,
            "environments": _INT,
            "secrets": _INT,
            "valid": _BOOL,
            "network": _obj(
                {
                    "proxy": _OPT_STR,
                    "ca_bundle": _OPT_STR,
                    "use_environment": _BOOL,
                    "call_deadline": {"type": "number"},
                    "max_response_bytes": _INT,
                }
            ),
            "problems": _list(_STR),
        },
        stored_values=_INT,
        master_key_id=_STR,
        own_credentials=_list(_STR),
        warnings=_list(_STR),
    ),
    "import": _obj({"secret": _STR, "environment": _OPT_STR, "version": _STR}),
    "status": _list(
        _obj(
            {
                "secret": _STR,
                "provider": _STR,
                "scope": _STR,
                "age_days": {"type": ["number", "null"]},
                "rotations": _list(
                    _obj({"rotation": _STR, "kind": _STR, "state": _STR, "needs_person": _BOOL})
                ),
            }
        )
    ),
    "run": OUTCOMES,
    "emergency": OUTCOMES,
    "supply": OUTCOMES,
    "confirm": OUTCOMES,
    "resume": OUTCOMES,
    "rollback": OUTCOMES,
    "abort": OUTCOMES,
    "plan": _list(
        _obj(
            {
                "unit": _STR,
                "rotation": _OPT_STR,
                "kind": _STR,
                "state": _STR,
                "action": _STR,
                "reason": _STR,
                "until": _OPT_STR,
            }
        )
    ),
    "approve": _obj({"secret": _STR, "environment": _OPT_STR, "rotation": _STR}),
    "review": _obj({"secret": _STR, "environment": _OPT_STR, "rotation": _STR}),
    "show": _obj(
        {
            "secret": _STR,
            "scope": _STR,
            "versions": _list(_obj({"id": _STR, "state": _STR, "created_at": _STR})),
            "rotations": _list(_obj({"id": _STR, "kind": _STR, "state": _STR, "steps": _list({})})),
        }
    ),
    "calendar": {"type": "object"},
    "providers": _list(
        _obj({"name": _STR, "automated_generate": _BOOL, "automated_revoke": _BOOL})
    ),
    "keys rewrap": _obj({"rewrapped": _INT, "master_key_id": _STR}),
    "db upgrade": _obj({"database": _STR, "schema": _STR}),
    "audit verify": _obj({"valid": _BOOL, "summary": _STR}),
    "audit export": _obj(
        {"file": _STR, "entries": _INT, "checkpoints": _INT, "origin": _STR, "key_name": _STR}
    ),
    "audit hash": _obj({"fingerprint": _STR, "found": _BOOL, "events": _list({})}),
    "audit log": _obj({"seq": _INT, "time": _STR, "type": _STR, "actor": _STR}),
    # The tool's own credentials (rotator/own/cli.py).
    "credentials import": _obj(
        {"credential": _STR, "token_id": _STR, "source": _STR, "verified": _BOOL}
    ),
    "credentials rotate": _obj(
        {"credential": _STR, "rotation": _STR, "state": _STR, "resumed": _BOOL}
    ),
    "credentials list": _list(
        _obj({"credential": _STR, "source": _STR, "stored": _BOOL, "cycle": _STR, "needs": _STR})
    ),
}
"""Per command. `audit log --json` prints one such object per line (JSON Lines)."""

WITHOUT_JSON: dict[str, str] = {
    "metrics": "its output is the Prometheus text format, read by Prometheus",
    "demo": "a walkthrough for people; `rotate status --json` reads its state",
    "sandbox": "a server; it writes its inventory and values to --workdir",
    "audit report": "its output is an HTML file",
    "sandbox console stripe new-key": "stdout is the new value alone, to pipe into supply",
    "sandbox console stripe keys": "a stand-in for a dashboard page",
    "sandbox console stripe expire": "a stand-in for a dashboard button",
    "sandbox console stripe expire-old": "a stand-in for a dashboard button",
    "sandbox console google new-secret": "stdout is the new value alone, to pipe into supply",
    "sandbox console google secrets": "a stand-in for a console page",
    "sandbox console google retire-old": "a stand-in for console buttons",
    "sandbox console signals error-rate": "a stand-in for a bad deploy, for rehearsals",
    "sandbox console signals outage": "a stand-in for a monitoring outage, for rehearsals",
}
"""Commands with no `--json`, and why (a test checks every other command has it)."""


def document() -> dict[str, Any]:
    """Return the versioned schema document for every command's `--json`."""
    return {"schema_version": SCHEMA_VERSION, "commands": SCHEMAS, "without_json": WITHOUT_JSON}


if __name__ == "__main__":
    print(json.dumps(document(), indent=2, sort_keys=True))
