"""What `rotate check` says about the tool's own credentials: source, cycle, privileges."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rotator.own import store as own

if TYPE_CHECKING:
    from rotator.engine import Engine

REQUIRED = {
    "cloudflare_api_token": "Workers Scripts Write, Pages Write (targets); API Tokens Write "
    "(the tool rotating this token itself)",
    "gcp_service_account": "API Keys Admin (roles/serviceusage.apiKeysAdmin) on the project; "
    "Service Account Key Admin (roles/iam.serviceAccountKeyAdmin) on its own service account "
    "only (the tool rotating its key)",
}


def sources(engine: Engine) -> list[dict[str, Any]]:
    from rotator.own.schedule import ROTATABLE, next_due

    rt = engine.rt
    rows = []
    for name in rt.inventory.credentials:
        stored = own.has_stored(rt, name)
        if name in ROTATABLE:
            due, why = next_due(engine, name)
            cycle = f"next rotation {due:%Y-%m-%d} ({why})" if due else why
        else:
            cycle = "not rotated by the tool"
        rows.append(
            {
                "credential": name,
                "source": rt.credentials.source(name, stored=stored),
                "stored": stored,
                "cycle": cycle,
                "needs": REQUIRED.get(name, ""),
            }
        )
    return rows


def report(engine: Engine) -> tuple[list[str], list[str]]:
    """Return lines for `rotate check` and warnings (a token broader than needed)."""
    from rotator.errors import RotatorError
    from rotator.own import cloudflare

    lines, warnings = [], []
    for row in sources(engine):
        lines.append(f"{row['credential']}: from {row['source']}; {row['cycle']}")
        if row["needs"]:
            lines.append(f"  needs: {row['needs']}")
    from rotator.own import google

    if google.NAME in engine.rt.inventory.credentials:
        try:
            key_id = google.prove(engine)
            lines.append(f"{google.NAME}: token exchange works (key {key_id})")
        except RotatorError as exc:
            warnings.append(f"{google.NAME}: the token exchange failed: {exc}")
    if cloudflare.NAME in engine.rt.inventory.credentials:
        try:
            seen = cloudflare.privileges(engine)
        except RotatorError as exc:
            warnings.append(f"{cloudflare.NAME}: could not be verified with Cloudflare: {exc}")
            return lines, warnings
        if not seen["readable"]:
            warnings.append(
                f"{cloudflare.NAME}: verified (token {seen['token_id']}), but its policies "
                "cannot be read (it lacks API Tokens Read/Write), so its breadth is unknown "
                "and the tool cannot rotate it"
            )
            return lines, warnings
        lines.append(
            f"{cloudflare.NAME}: verified (token {seen['token_id']}); grants "
            f"{', '.join(seen['granted']) or 'nothing'}"
        )
        for name in seen["missing"]:
            warnings.append(f"{cloudflare.NAME}: lacks {name}, needed to {cloudflare.WHY[name]}")
        if seen["extra"]:
            warnings.append(
                f"{cloudflare.NAME}: broader than needed: also grants "
                f"{', '.join(seen['extra'])}; create a minimal token (docs/operator-guide.md, "
                "Least privilege) and `rotate credentials import cloudflare`"
            )
    return lines, warnings
