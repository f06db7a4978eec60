"""What a command works on and reports: a unit, one step's snapshot, and its outcome.

Shared by the engine and the modules it delegates to (planning, publishing, revocation,
rollback) and by the commands; no behaviour here beyond naming and merging.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import Session

from rotator import machine as m
from rotator.clock import as_utc
from rotator.inventory import SecretSpec
from rotator.secret import Secret
from rotator.store.models import CredentialVersion, Rotation


@dataclass
class Unit:
    """One rotatable unit: a secret in one scope (shared, or one environment)."""

    spec: SecretSpec
    scope_env: str

    @property
    def label(self) -> str:
        return (
            self.spec.name if self.scope_env == "shared" else f"{self.spec.name}[{self.scope_env}]"
        )

    @property
    def env_flag(self) -> str:
        return "" if self.scope_env == "shared" else f" --env {self.scope_env}"

    @property
    def stage_envs(self) -> tuple[str, ...]:
        if self.scope_env == "shared":
            return ("staging",)
        return () if self.scope_env == "production" else (self.scope_env,)

    @property
    def promote_envs(self) -> tuple[str, ...]:
        if self.scope_env == "shared":
            return ("production",)
        return ("production",) if self.scope_env == "production" else ()


@dataclass
class Outcome:
    """What happened to one unit in a command: for the summary and the timeline."""

    unit: str
    status: str  # done | waiting | person | failed | claimed
    steps: list[str] = field(default_factory=list)
    message: str = ""
    until: datetime | None = None


@dataclass
class Work:
    """A snapshot of one rotation for a side effect, taken inside the intent transaction."""

    rotation_id: str
    fence: int
    step: str
    unit: Unit
    kind: str
    facts: dict[str, Any]
    resumed: bool = True
    current: tuple[CredentialVersion, Secret] | None = None
    pending: tuple[CredentialVersion, Secret] | None = None
    previous: tuple[CredentialVersion, Secret] | None = None
    to_revoke: list[tuple[CredentialVersion, Secret | None]] = field(default_factory=list)
    served: dict[str, list[str]] = field(default_factory=dict)  # version → `env: target`s
    current_id: str | None = None
    begun_in: str = ""  # the rotation's state when the step began


Apply = Callable[[Session, Rotation], None]


def when(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    return as_utc(datetime.fromisoformat(value))


def status_of(result: str) -> str:
    return {"ok": "done", "person": "person", "failed": "failed", "retry": "retrying"}.get(
        result, "waiting"
    )


def outcome_of(label: str, steps: list[str], decision: m.Decision, state: str = "") -> Outcome:
    if isinstance(decision, m.AwaitPerson):
        return Outcome(label, "person", steps, decision.action)
    if isinstance(decision, m.Wait):
        return Outcome(
            label, "done" if steps else "waiting", steps, decision.reason, decision.until
        )
    if isinstance(decision, m.Finished):
        if decision.state == m.ROLLED_BACK and "rollback" in steps and state != m.ABORTING:
            # The rotation did not happen: the previous value serves again. Not a success.
            return Outcome(label, "failed", steps, "rolled back; the previous value serves again")
        return Outcome(label, "done" if steps else "waiting", steps, decision.state)
    return Outcome(label, "done", steps)


_RANK = {"failed": 5, "retrying": 4, "person": 3, "claimed": 2, "done": 1, "waiting": 0}


def merge_outcome(outcomes: dict[str, Outcome], new: Outcome) -> None:
    old = outcomes.get(new.unit)
    if old is None:
        outcomes[new.unit] = new
        return
    old.steps.extend(new.steps)
    if _RANK[new.status] >= _RANK[old.status]:
        old.status = new.status
        old.message = new.message or old.message
        old.until = new.until
