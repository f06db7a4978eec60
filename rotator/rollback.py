"""The rollback sequence and the monitoring that starts it (DESIGN §3 "Operations").

Restore the previous value everywhere the new one went (production first when production
failed), check each environment's health on it, and only then discard the new credential,
after checking that no target serves it. An emergency keeps its new credential and ends
needing a person: production serves the compromised credential again, and says so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlmodel import Session

from rotator import machine as m
from rotator import publishing, revocation
from rotator import repository as repo
from rotator.clock import as_utc
from rotator.errors import NeedsPersonError, RollbackIncompleteError
from rotator.store.models import CredentialVersion, Rotation
from rotator.work import Apply, Unit, Work

if TYPE_CHECKING:
    from rotator.engine import Engine


def do_rollback(engine: Engine, work: Work) -> Apply:
    """The rollback sequence (DESIGN §3): restore everywhere, check, then discard.

    The previous value goes back to every environment whose targets may serve the new
    one (production first when production failed), each environment must pass its
    health check on it, and only then is the new credential discarded, after checking
    that no target serves it. An emergency keeps its new credential (it is not
    compromised) for `rotate resume`, and ends needing a person.
    """
    unit = work.unit
    own = [v for v in (work.current, work.pending) if v and v[0].rotation_id == work.rotation_id]
    new = own[0] if own else None
    promoted = new is not None and work.current is not None and new is work.current
    old = work.previous if promoted else work.current
    if new is None or old is None:
        raise RollbackIncompleteError(
            f"{unit.label}: nothing to roll back to (no "
            f"{'previous' if promoted else 'current'} value is stored)"
        )
    failed_env = work.facts.get("failed_env")
    reason = str(work.facts.get("rollback_reason") or "rollback")
    envs = set(unit.stage_envs) | (set(unit.promote_envs) if promoted else set())
    envs |= {t.split(":", 1)[0] for t in work.served.get(new[0].id, [])}
    order = publishing.production_first(sorted(envs), failed_env)
    for env in order:
        engine.rt.progress(f"{unit.label}: rollback: restoring the previous value in {env}")
        publishing.republish(engine, work, env, old)
    before = work.facts.get("health_before")
    for env in order:
        ok, detail = publishing.healthy(engine, env)
        if not ok and isinstance(before, dict) and before.get(env, "ok") != "ok":
            # Failing before the emergency began, on the very value restored now: the
            # restore is complete; what fails is not this rotation's doing.
            engine.rt.progress(f"{unit.label}: {env} still fails, as it did before: {detail}")
            continue
        if not ok:
            raise RollbackIncompleteError(
                f"{unit.label}: the previous value is back in {', '.join(order)}, but "
                f"{detail}; the new credential is kept until every environment passes "
                f"again: fix the environment, then run `rotate resume "
                f"{unit.spec.name}{unit.env_flag}`"
            )
    work.served[new[0].id] = []
    keep_new = work.kind == m.EMERGENCY and work.begun_in == m.ROLLING_BACK
    revoked: list[str] = []
    person = None
    if not keep_new:
        # The restored value is the one in use again: providers that sign in with the
        # current credential (Resend) must use it, not the one being discarded.
        work.current = old
        try:
            revoked = revocation.revoke_all(engine, work, [new], allow_person=True)
        except NeedsPersonError:
            person = _discard_instruction(unit, new[0])

    def apply(s: Session, rotation: Rotation) -> None:
        o, n = s.get(CredentialVersion, old[0].id), s.get(CredentialVersion, new[0].id)
        if promoted and o is not None and n is not None:
            m.move_version(o, repo.CURRENT)
            m.move_version(n, repo.PENDING if keep_new else repo.PREVIOUS)
            s.add_all([o, n])
        revocation.mark_revoked(engine, s, work, revoked)
        engine.audit(
            s,
            "rotation.rolled_back",
            unit=unit,
            rotation_id=rotation.id,
            reason=reason,
            restored=order,
            restored_version=old[0].id,
            new_version=new[0].id,
            new_kept=keep_new,
        )
        if person is not None:
            repo.set_facts(rotation, instruction=person, revoke=[new[0].id])
            engine.change_state(s, rotation, "await-person", unit=unit)
            return
        if keep_new:
            text = _emergency_rolled_back(unit, reason, work.facts)
            repo.set_facts(rotation, instruction=text, serves_compromised=True)
            rotation.last_error = text
        engine.change_state(s, rotation, "done", unit=unit)

    return apply


def monitor(engine: Engine, rotation_id: str, fence: int, unit: Unit) -> bool:
    """Watch production after promotion; a degraded signal starts the rollback.

    The health URL and every configured signal (Rollbar, Logflare) are judged over the
    time since the last look (see `rotator.signals.watch`). `unknown` is no failure: the
    machine's `signals_answered` gate holds the step until they answer again.
    """
    from rotator.signals.watch import watch

    return watch(engine, rotation_id, fence, unit, unit.promote_envs, stage=False) != "degraded"


def tell_rolled_back(engine: Engine, work: Work, result: str) -> None:
    reason = work.facts.get("rollback_reason") or "rollback"
    if work.kind == m.EMERGENCY and result == "failed":
        engine.notify(
            "emergency-failed",
            f"URGENT: {_emergency_rolled_back(work.unit, str(reason), work.facts)}",
            unit=work.unit,
        )
        return
    engine.notify(
        "rollback",
        f"{work.unit.label} was rolled back to its previous value: {reason}",
        unit=work.unit,
    )


def _discard_instruction(unit: Unit, version: CredentialVersion) -> str:
    created = as_utc(version.created_at).strftime("%Y-%m-%d %H:%M UTC")
    ref = f", reference {version.provider_ref}" if version.provider_ref else ""
    return (
        f"{unit.label} was rolled back: every environment serves the previous credential "
        "again. Delete the NEW credential at the provider, the one this rotation created "
        f"on {created} (version {version.id}, fingerprint {version.fingerprint}{ref}). "
        "Keep the current one: it is in use.\n"
        f"Then run: rotate confirm {unit.spec.name}{unit.env_flag} --step revoke "
        "(the tool checks that the provider now refuses the new credential)"
    )


def _emergency_rolled_back(unit: Unit, reason: str, facts: dict[str, Any]) -> str:
    before = facts.get("health_before", {})
    failing = {
        env: detail
        for env, detail in (before.items() if isinstance(before, dict) else ())
        if detail != "ok"
    }
    already = ""
    if failing:
        already = (
            " It was already failing before the emergency started ("
            + "; ".join(f"{env}: {detail}" for env, detail in sorted(failing.items()))
            + ")."
        )
    return (
        f"EMERGENCY NOT FINISHED: production serves the COMPROMISED credential of "
        f"{unit.label} again. The new credential failed in production ({reason}) and was "
        f"rolled back; it is kept, not revoked.{already} Fix what fails, then run "
        f"`rotate resume {unit.spec.name}{unit.env_flag}` (or `rotate emergency "
        f"{unit.spec.name}{unit.env_flag}` again): it stages and promotes the new "
        "credential again, then revokes the compromised ones."
    )
