"""Decide the next step of a rotation: a pure function of its state, the facts and the time.

The two tables below are DESIGN.md §3 written as data, one row per step, so a reader can
check them line by line. The machine never calls anything; the engine performs what it
answers and records the result. A row reads: in `state`, step `step` may run once every
gate passes; success moves to `done`; an operator-assisted provider waits in `waiting`
for a person (`rotate supply` / `rotate confirm`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from rotator.errors import RefusedError

# States. A rotation is in exactly one; the terminal ones end it.
PLANNED = "planned"
ASSESSED = "assessed"  # emergency: scope recorded, nothing done yet
AWAITING_SUPPLY = "awaiting-supply"  # a person must hand over the new value
GENERATED = "generated"  # new credential exists, value stored encrypted as pending
STAGED = "staged"  # published to staging, staging healthy
VALIDATED = "validated"  # provider accepts it, staging still healthy after the soak
PROMOTED = "promoted"  # production uses it; monitoring
MONITORED = "monitored"  # monitoring window passed without a failing check
AWAITING_REVOKE = "awaiting-revoke"  # a person must revoke the old credential
REVOKED = "revoked"  # old credential(s) refused by the provider, values destroyed
NOTIFIED = "notified"  # emergency: people told
COMPLETED = "completed"
ROLLED_BACK = "rolled-back"
ABORTED = "aborted"
SUPERSEDED = "superseded"  # an emergency took over this quarterly cycle
FAILED = "failed"  # needs a person: the retry budget of a step is spent

TERMINAL = frozenset({COMPLETED, ROLLED_BACK, ABORTED, SUPERSEDED})
QUARTERLY = "quarterly"
EMERGENCY = "emergency"


@dataclass(frozen=True)
class Facts:
    """What the engine knows about a rotation at the moment of asking."""

    kind: str
    state: str
    now: datetime
    month_gates: tuple[datetime, datetime, datetime, datetime] | None = None
    live_credentials: int = 1
    has_current: bool = True
    automated_generate: bool = True
    automated_revoke: bool = True
    staged_at: datetime | None = None
    promoted_at: datetime | None = None
    soak: timedelta = timedelta(hours=24)
    monitoring: timedelta = timedelta(hours=24)
    revoke_delay: timedelta = timedelta(hours=24)
    in_window: bool = True
    window_opens: datetime | None = None
    approval_required: bool = False
    approved: bool = False
    rolled_back: bool = False
    failed_state: str | None = None


@dataclass(frozen=True)
class Do:
    step: str


@dataclass(frozen=True)
class Wait:
    reason: str
    until: datetime | None = None


@dataclass(frozen=True)
class AwaitPerson:
    """A person must act; `command` is what they run when done."""

    action: str
    command: str


@dataclass(frozen=True)
class Finished:
    state: str


Decision = Do | Wait | AwaitPerson | Finished
Gate = Callable[[Facts], Wait | None]


# Gates: each answers None when open, else why it is closed and until when.
def previous_revoked(f: Facts) -> Wait | None:
    if not f.has_current:
        return Wait("no current value is recorded: run `rotate import SECRET` first")
    if f.live_credentials >= 2:
        return Wait("the previous cycle has not revoked its old credential yet (two are live)")
    return None


def _month(n: int) -> Gate:
    def gate(f: Facts) -> Wait | None:
        if f.month_gates is None:
            return None
        opens = f.month_gates[n - 1]
        if f.now < opens:
            return Wait(f"month {n} of the cycle has not started", opens)
        return None

    gate.__name__ = f"month_{n}"
    return gate


def soaked(f: Facts) -> Wait | None:
    if f.staged_at is not None and f.now < f.staged_at + f.soak:
        return Wait("staged for less than the soak period", f.staged_at + f.soak)
    return None


def in_window(f: Facts) -> Wait | None:
    if not f.in_window:
        return Wait("outside the production maintenance window", f.window_opens)
    return None


def approved(f: Facts) -> Wait | None:
    if f.approval_required and not f.approved:
        return Wait("production needs a recorded approval: run `rotate approve SECRET`")
    return None


def revoke_delay(f: Facts) -> Wait | None:
    if f.promoted_at is not None and f.now < f.promoted_at + f.revoke_delay:
        return Wait("less than 24 h since promotion", f.promoted_at + f.revoke_delay)
    return None


def monitored(f: Facts) -> Wait | None:
    if f.promoted_at is not None and f.now < f.promoted_at + f.monitoring:
        return Wait("production is being monitored after promotion", f.promoted_at + f.monitoring)
    return None


@dataclass(frozen=True)
class Row:
    state: str
    step: str
    gates: tuple[Gate, ...]
    done: str
    waiting: str | None = None  # the state while a person must act (operator-assisted)
    person: str | None = None  # what that person does
    command: str = ""
    human: bool = False  # the step is a person's decision, never automatic
    notes: str = field(default="")


# DESIGN.md §3, quarterly: month 1 plan/generate/stage, 2 validate, 3 promote/monitor,
# 4 revoke/review.
QUARTERLY_TABLE: tuple[Row, ...] = (
    Row(
        PLANNED,
        "generate",
        (_month(1), previous_revoked),
        GENERATED,
        waiting=AWAITING_SUPPLY,
        person="create a new credential and hand it over",
        command="rotate supply {secret}{env}",
    ),
    Row(GENERATED, "stage", (_month(1),), STAGED),
    Row(STAGED, "validate", (_month(2), soaked), VALIDATED),
    Row(VALIDATED, "promote", (_month(3), approved, in_window), PROMOTED),
    Row(PROMOTED, "monitor", (monitored,), MONITORED),
    Row(
        MONITORED,
        "revoke",
        (_month(4), revoke_delay),
        REVOKED,
        waiting=AWAITING_REVOKE,
        person="revoke the old credential at the provider",
        command="rotate confirm {secret}{env} --step revoke",
    ),
    Row(
        REVOKED,
        "review",
        (),
        COMPLETED,
        human=True,
        person="record the security review of this cycle",
        command='rotate review {secret}{env} --note "..."',
    ),
)

# DESIGN.md §3, emergency: assess, generate, stage (+validate), promote, revoke, notify —
# no month gate, no window, no soak.
EMERGENCY_TABLE: tuple[Row, ...] = (
    Row(
        ASSESSED,
        "generate",
        (),
        GENERATED,
        waiting=AWAITING_SUPPLY,
        person="create a new credential and hand it over",
        command="rotate supply {secret}{env}",
    ),
    Row(GENERATED, "stage", (), STAGED),
    Row(STAGED, "promote", (), PROMOTED),
    Row(
        PROMOTED,
        "revoke",
        (),
        REVOKED,
        waiting=AWAITING_REVOKE,
        person="revoke every compromised credential at the provider",
        command="rotate confirm {secret}{env} --step revoke",
    ),
    Row(REVOKED, "notify", (), COMPLETED),
)

TABLES = {QUARTERLY: QUARTERLY_TABLE, EMERGENCY: EMERGENCY_TABLE}


def row_for(kind: str, state: str) -> Row | None:
    for row in TABLES[kind]:
        if state in (row.state, row.waiting):
            return row
    return None


def next_decision(f: Facts) -> Decision:
    """Answer what may happen now: a step to run, a wait with its reason, or a person's turn."""
    if f.state in TERMINAL:
        return Finished(f.state)
    if f.state == FAILED:
        return AwaitPerson(
            f"a step failed after its retry budget (in state {f.failed_state})",
            "rotate resume {secret}{env}",
        )
    row = row_for(f.kind, f.state)
    if row is None:
        raise ValueError(f"no row for state {f.state!r} of a {f.kind} rotation")
    for gate in row.gates:
        closed = gate(f)
        if closed is not None:
            return closed
    if row.human:
        return AwaitPerson(row.person or row.step, row.command)
    if f.state == row.waiting:
        return AwaitPerson(row.person or row.step, row.command)
    return Do(row.step)


# Operator commands: in which states each is allowed, and what it needs.
def check_command(command: str, f: Facts) -> None:
    """Raise `RefusedError` naming why `command` is not allowed now and when it will be."""
    state = f.state
    if state in TERMINAL:
        raise RefusedError(f"the rotation is {state}; there is nothing to {command}")
    if command == "supply":
        if state != AWAITING_SUPPLY:
            raise RefusedError(
                f"no value is awaited: the rotation is {state}, "
                "and `supply` only answers a generate step that waits for a person",
                _opening_of(f, "generate"),
            )
    elif command == "confirm-revoke":
        if state != AWAITING_REVOKE:
            raise RefusedError(
                f"no revocation awaits confirmation: the rotation is {state}",
                _opening_of(f, "revoke"),
            )
    elif command == "approve":
        if f.kind != QUARTERLY or state not in (GENERATED, STAGED, VALIDATED):
            raise RefusedError(
                f"approval is given between generate and promote; the rotation is {state}"
            )
    elif command == "review":
        if state != REVOKED or f.kind != QUARTERLY:
            raise RefusedError(
                f"the security review comes after revocation; the rotation is {state}",
                _opening_of(f, "revoke"),
            )
    elif command == "rollback":
        if state not in (PROMOTED, MONITORED, AWAITING_REVOKE):
            raise RefusedError(
                f"rollback is possible after promote and before revoke; the rotation is {state}"
                + ("; use `rotate abort` before promotion" if _before_promote(state) else "")
            )
    elif command == "abort":
        if not _before_promote(state):
            raise RefusedError(
                f"abort is possible only before promotion; the rotation is {state}"
                + ("; use `rotate rollback` instead" if state in (PROMOTED, MONITORED) else "")
            )
    elif command == "resume":
        if state != FAILED:
            raise RefusedError(f"the rotation has not failed; it is {state}")
    else:
        raise ValueError(f"unknown command {command!r}")


def _before_promote(state: str) -> bool:
    return state in (PLANNED, ASSESSED, AWAITING_SUPPLY, GENERATED, STAGED, VALIDATED)


def _opening_of(f: Facts, step: str) -> datetime | None:
    """When the month gate of `step` opens, if the rotation is quarterly and it lies ahead."""
    if f.month_gates is None:
        return None
    month = {"generate": 1, "stage": 1, "validate": 2, "promote": 3, "revoke": 4}[step]
    opens = f.month_gates[month - 1]
    return opens if opens > f.now else None
