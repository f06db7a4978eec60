"""Decide the next step of a rotation: a pure function of its state, the facts and the time.

The two tables below are DESIGN.md §3 written as data, one row per step, so a reader can
check them line by line. The machine never calls anything; the engine performs what it
answers and records the result. A row reads: in `state`, step `step` may run once every
gate passes; success moves to `done`; an operator-assisted provider waits in `waiting`
for a person (`rotate supply` / `rotate confirm`).

Every state change is answered here: `next_state(kind, state, event)` reads the rows for
a step's success, a person's turn and a person's answer, and `EVENTS` for what is not a
step (a failed health check, rollback, abort, supersede, fail, resume). The engine calls
it for every change and never sets a state of its own accord, so a rule of the sequence
is one row or one event here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

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
ROLLING_BACK = "rolling-back"  # the previous value goes back everywhere the new one went
ABORTING = "aborting"  # before promotion: staging goes back, the pending one is discarded
AWAITING_DISCARD = "awaiting-discard"  # a person must delete the rolled-back credential

TERMINAL = frozenset({COMPLETED, ROLLED_BACK, ABORTED, SUPERSEDED})
PERSON_STATES = frozenset({AWAITING_SUPPLY, AWAITING_REVOKE, AWAITING_DISCARD, FAILED})
"""States in which nothing moves until a person acts: shown, counted and reminded."""
BEFORE_PROMOTE = frozenset({PLANNED, ASSESSED, AWAITING_SUPPLY, GENERATED, STAGED, VALIDATED})
IN_FLIGHT_EXCLUDED = frozenset({PLANNED, REVOKED})
"""Active states that hold no credential of their own in motion: a planned cycle waits
for the previous one, a revoked one only awaits its review. Every other active state is
"in flight", and the database allows one such rotation per unit (`uq_rotation_in_flight`)."""
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
    other_in_flight: str | None = None  # another rotation of the unit holding the slot
    signals_unknown_since: datetime | None = None  # a monitoring signal could not answer
    signal_grace: timedelta = timedelta(hours=6)


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
Gate = Callable[[Facts], Wait | AwaitPerson | None]


# Gates: each answers None when open, else why it is closed and until when.
def previous_revoked(f: Facts) -> Wait | None:
    if not f.has_current:
        return Wait("no current value is recorded: run `rotate import SECRET` first")
    if f.live_credentials >= 2:
        return Wait("the previous cycle has not revoked its old credential yet (two are live)")
    return None


def unit_free(f: Facts) -> Wait | None:
    """One rotation in flight per unit: a cycle waits while another one holds the slot."""
    if f.other_in_flight:
        return Wait(f"rotation {f.other_in_flight} of this secret is still in flight")
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


def approved(f: Facts) -> AwaitPerson | None:
    # A person's turn, not a date: shown as needing a person and reminded daily.
    if f.approval_required and not f.approved:
        return AwaitPerson(
            "production needs a recorded stakeholder approval",
            'rotate approve {secret}{env} --note "..."',
        )
    return None


def revoke_delay(f: Facts) -> Wait | None:
    if f.promoted_at is not None and f.now < f.promoted_at + f.revoke_delay:
        return Wait("less than 24 h since promotion", f.promoted_at + f.revoke_delay)
    return None


def monitored(f: Facts) -> Wait | None:
    if f.promoted_at is not None and f.now < f.promoted_at + f.monitoring:
        return Wait("production is being monitored after promotion", f.promoted_at + f.monitoring)
    return None


def signals_answered(f: Facts) -> Wait | AwaitPerson | None:
    """A gate judged by monitoring signals never passes on silence: it waits, then asks."""
    since = f.signals_unknown_since
    if since is None:
        return None
    if f.now < since + f.signal_grace:
        return Wait(
            f"a monitoring signal has not answered since {since:%Y-%m-%d %H:%M %Z}; "
            "the step waits for it",
            since + f.signal_grace,
        )
    return AwaitPerson(
        f"a monitoring signal has not answered since {since:%Y-%m-%d %H:%M %Z} (longer than "
        "the grace): the step waits; restore the source or its credential (`rotate check`)",
        "rotate run",
    )


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
    resume_to: str | None = None  # `done` is FAILED: the state `rotate resume` goes back to
    notes: str = field(default="")


# DESIGN.md §3, quarterly: month 1 plan/generate/stage, 2 validate, 3 promote/monitor,
# 4 revoke/review.
QUARTERLY_TABLE: tuple[Row, ...] = (
    Row(
        PLANNED,
        "generate",
        (_month(1), previous_revoked, unit_free),
        GENERATED,
        waiting=AWAITING_SUPPLY,
        person="create a new credential and hand it over",
        command="rotate supply {secret}{env}",
    ),
    Row(GENERATED, "stage", (_month(1),), STAGED),
    Row(STAGED, "validate", (_month(2), soaked, signals_answered), VALIDATED),
    Row(VALIDATED, "promote", (_month(3), approved, in_window, signals_answered), PROMOTED),
    Row(PROMOTED, "monitor", (signals_answered, monitored), MONITORED),
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
    # Rollback (DESIGN §3 "Operations"): the previous value back in every environment
    # that received the new one, production first when production failed, each one
    # healthy again, and only then the new credential discarded.
    Row(
        ROLLING_BACK,
        "rollback",
        (),
        ROLLED_BACK,
        waiting=AWAITING_DISCARD,
        person="delete the rolled-back credential at the provider (not the current one)",
        command="rotate confirm {secret}{env} --step revoke",
    ),
    Row(
        ABORTING,
        "rollback",
        (),
        ABORTED,
        waiting=AWAITING_DISCARD,
        person="delete the discarded pending credential at the provider (not the current one)",
        command="rotate confirm {secret}{env} --step revoke",
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
    # `monitoring` is the emergency's short window (settings.emergency_monitoring, 0 = none).
    Row(
        PROMOTED,
        "revoke",
        (signals_answered, monitored),
        REVOKED,
        waiting=AWAITING_REVOKE,
        person="revoke every compromised credential at the provider",
        command="rotate confirm {secret}{env} --step revoke",
    ),
    Row(REVOKED, "notify", (), COMPLETED),
    # An emergency that had to roll back cannot finish: service is restored on the
    # compromised credential, the new one is kept (not current) and a person decides.
    # `rotate resume` (or `rotate emergency` again) stages and promotes it once more.
    Row(
        ROLLING_BACK,
        "rollback",
        (),
        FAILED,
        resume_to=GENERATED,
        notes="production serves the compromised credential again",
    ),
    Row(ABORTING, "rollback", (), ABORTED),
)

TABLES = {QUARTERLY: QUARTERLY_TABLE, EMERGENCY: EMERGENCY_TABLE}


class IllegalTransition(ValueError):
    """The engine asked for a change the tables do not allow: a bug, never a person's error."""


# Events that are not a step's success: (kinds, states they may leave, state they enter).
ANY_KIND = frozenset({QUARTERLY, EMERGENCY})
_LIVE_STATES = frozenset(
    {
        PLANNED,
        ASSESSED,
        AWAITING_SUPPLY,
        GENERATED,
        STAGED,
        VALIDATED,
        PROMOTED,
        MONITORED,
        AWAITING_REVOKE,
        REVOKED,
        NOTIFIED,
        ROLLING_BACK,
        ABORTING,
        AWAITING_DISCARD,
    }
)
EVENTS: dict[str, tuple[frozenset[str], frozenset[str], str]] = {
    # A confirmed production failure after promotion (promote's own check, or monitoring:
    # the health URL or a degraded signal such as Rollbar's error rate).
    "health-failed": (ANY_KIND, frozenset({PROMOTED, MONITORED}), ROLLING_BACK),
    # A degraded staging signal before promotion: production is never promoted; a person
    # is told why with the figures (`rotate resume` to go on, `rotate abort` to stop).
    "degraded": (frozenset({QUARTERLY}), frozenset({STAGED, VALIDATED}), FAILED),
    # `rotate rollback`: after promote, before revoke.
    "rollback": (ANY_KIND, frozenset({PROMOTED, MONITORED, AWAITING_REVOKE}), ROLLING_BACK),
    # `rotate abort`: before promote.
    "abort": (ANY_KIND, BEFORE_PROMOTE, ABORTING),
    # An emergency took over (assess): the quarterly cycle ends where it stands.
    "supersede": (frozenset({QUARTERLY}), _LIVE_STATES | {FAILED}, SUPERSEDED),
    # A step's retry budget is spent, or its failure needs a person (a config, a key).
    "fail": (ANY_KIND, _LIVE_STATES, FAILED),
}
EVENT_SHORTCUTS: dict[tuple[str, str], str] = {
    # A planned cycle holds nothing in motion: aborting it ends it at once. Through
    # ABORTING it would enter flight beside the unit's rotation in flight (an emergency).
    ("abort", PLANNED): ABORTED,
}


def next_state(kind: str, state: str, event: str, *, resume_to: str | None = None) -> str:
    """Answer the state a rotation enters on `event`; raise `IllegalTransition` if none.

    `done`: the step of the row for `state` succeeded. `await-person`: that step needs a
    person (operator-assisted). `answered`: the person did it (`supply`, `confirm`).
    `resume`: a failed rotation goes back to `resume_to` (recorded when it failed).
    Any other event is looked up in `EVENTS`.
    """
    if event == "resume":
        if state != FAILED or not resume_to or resume_to in TERMINAL or resume_to == FAILED:
            raise IllegalTransition(f"cannot resume a {kind} rotation from {state} to {resume_to}")
        return resume_to
    if event in ("done", "await-person", "answered"):
        for row in TABLES[kind]:
            if event == "done" and state == row.state:
                return row.done
            if event == "await-person" and state == row.state and row.waiting:
                return row.waiting
            if event == "answered" and state == row.waiting:
                return row.done
        raise IllegalTransition(f"no row lets a {kind} rotation in {state} take {event!r}")
    if event not in EVENTS:
        raise IllegalTransition(f"unknown event {event!r}")
    kinds, sources, target = EVENTS[event]
    if kind not in kinds or state not in sources:
        raise IllegalTransition(f"a {kind} rotation in {state} cannot take {event!r}")
    return EVENT_SHORTCUTS.get((event, state), target)


class HasState(Protocol):
    state: str


class Rotating(HasState, Protocol):
    kind: str


def apply_transition(
    rotation: Rotating, event: str, *, resume_to: str | None = None
) -> tuple[str, str]:
    """Move `rotation` to the state `next_state` answers: the one place a rotation's
    state is written. Returns (before, after)."""
    before = rotation.state
    after = next_state(rotation.kind, before, event, resume_to=resume_to)
    rotation.state = after
    return before, after


# A credential version's life: which moves the sequences make (promote, rollback, revoke).
VERSION_MOVES: frozenset[tuple[str, str]] = frozenset(
    {
        ("pending", "current"),  # promote
        ("current", "previous"),  # promote: the old one steps aside
        ("previous", "current"),  # rollback after promotion
        ("current", "pending"),  # an emergency's rollback keeps its new credential
        ("pending", "revoked"),
        ("current", "revoked"),
        ("previous", "revoked"),
    }
)


def move_version(version: HasState, to: str) -> None:
    """Move a credential version, refusing a move no sequence makes (a bug, not input)."""
    if (version.state, to) not in VERSION_MOVES:
        raise IllegalTransition(f"a credential version cannot go from {version.state} to {to}")
    version.state = to


OWN_ROTATION_MOVES: frozenset[tuple[str, str]] = frozenset(
    {
        # The tool's own credentials (rotator/own): overlap, no environments to walk.
        ("started", "created"),  # the new token or key exists and is recorded as pending
        ("created", "switched"),  # verified, and every use now reads it
        ("switched", "done"),  # the old one deleted and proven refused
        # An emergency rolls the leaked token: the old value dies with the roll.
        ("rolling", "rolled"),  # the new value is stored in the step that got it
        ("rolled", "done"),
    }
)


def move_own_rotation(own: HasState, to: str) -> None:
    """Move a rotation of the tool's own credential along its one overlap sequence."""
    if (own.state, to) not in OWN_ROTATION_MOVES:
        raise IllegalTransition(f"an own-credential rotation cannot go from {own.state} to {to}")
    own.state = to


def resume_point(kind: str, state: str) -> str | None:
    """Where `rotate resume` goes back to when the row for `state` ends in FAILED."""
    for row in TABLES[kind]:
        if row.state == state and row.done == FAILED:
            return row.resume_to
    return None


def in_flight(state: str, active: bool) -> bool:
    """True when the rotation holds the unit's one in-flight slot (see the partial index)."""
    return active and state not in IN_FLIGHT_EXCLUDED and state not in TERMINAL


def needs_person(kind: str, state: str) -> bool:
    """True in a state that waits for a person (a human gate is found by `next_decision`)."""
    return state in PERSON_STATES or (state == REVOKED and kind == QUARTERLY)


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
            f"the rotation stopped and needs a person (it was {f.failed_state})",
            "rotate resume {secret}{env}",
        )
    row = row_for(f.kind, f.state)
    if row is None:
        raise ValueError(f"no row for state {f.state!r} of a {f.kind} rotation")
    if f.state == row.waiting:
        return AwaitPerson(row.person or row.step, row.command)
    for gate in row.gates:
        closed = gate(f)
        if closed is not None:
            return closed
    if row.human:
        return AwaitPerson(row.person or row.step, row.command)
    return Do(row.step)


# Operator commands: the states each is allowed in (both kinds unless named).
COMMANDS: dict[str, tuple[frozenset[str], frozenset[str], str]] = {
    "supply": (
        ANY_KIND,
        frozenset({AWAITING_SUPPLY}),
        "no value is awaited: the rotation is {state}, and `supply` only answers a "
        "generate step that waits for a person",
    ),
    "confirm-revoke": (
        ANY_KIND,
        frozenset({AWAITING_REVOKE, AWAITING_DISCARD}),
        "no revocation awaits confirmation: the rotation is {state}",
    ),
    "approve": (
        frozenset({QUARTERLY}),
        frozenset({GENERATED, STAGED, VALIDATED}),
        "approval is given between generate and promote; the rotation is {state}",
    ),
    "review": (
        frozenset({QUARTERLY}),
        frozenset({REVOKED}),
        "the security review comes after revocation; the rotation is {state}",
    ),
    "rollback": (
        ANY_KIND,
        EVENTS["rollback"][1],
        "rollback is possible after promote and before revoke; the rotation is {state}",
    ),
    "abort": (
        ANY_KIND,
        EVENTS["abort"][1],
        "abort is possible only before promotion; the rotation is {state}",
    ),
    "resume": (ANY_KIND, frozenset({FAILED}), "the rotation has not failed; it is {state}"),
}
_OPENS_WITH = {"supply": "generate", "confirm-revoke": "revoke", "review": "revoke"}


def check_command(command: str, f: Facts) -> None:
    """Raise `RefusedError` naming why `command` is not allowed now and when it will be."""
    if command not in COMMANDS:
        raise ValueError(f"unknown command {command!r}")
    state = f.state
    if state in TERMINAL:
        raise RefusedError(f"the rotation is {state}; there is nothing to {command}")
    kinds, states, why = COMMANDS[command]
    if f.kind not in kinds or state not in states:
        hint = ""
        if command == "rollback" and state in BEFORE_PROMOTE:
            hint = "; use `rotate abort` before promotion"
        elif command == "abort" and state in (PROMOTED, MONITORED):
            hint = "; use `rotate rollback` instead"
        step = _OPENS_WITH.get(command)
        raise RefusedError(
            why.format(state=state) + hint,
            _opening_of(f, step) if step else None,
        )
    if command == "approve" and f.approved:
        raise RefusedError("this rotation is already approved; one approval is recorded")


def _opening_of(f: Facts, step: str) -> datetime | None:
    """When the month gate of `step` opens, if the rotation is quarterly and it lies ahead."""
    if f.month_gates is None:
        return None
    month = {"generate": 1, "stage": 1, "validate": 2, "promote": 3, "revoke": 4}[step]
    opens = f.month_gates[month - 1]
    return opens if opens > f.now else None
