"""Kill every command of a full quarterly cycle at every request it sends; resume; compare.

The cycle is the one of tests/e2e (all four secrets, six units): month-1 run, the
operator's supplies, month 2, the promotion in the window, monitoring, month 4 (revoke,
and the next cycle opening), the operator's revocations confirmed, the reviews. A dry run
walks it once, snapshots the world before each command and records what it observes
after each one. Then every request N of every command is a crash point, before and after
the sandbox applies it: the world is restored to the snapshot before that command, the
command is killed at N, run again, and what is observed must equal the dry run's
observation after that command:

* every rotation in the same state; the same number of live credentials at each
  provider, each one a version the tool holds (no orphan, one new credential per rotation);
* in staging and production (Workers and Pages) the value of the same tool version as in
  the dry run (compared by fingerprint): no value lost;
* production healthy at every moment; `rotate audit verify` passes; the trail shows the
  interrupted step and its later completion.

Equal observations mean the rest of the cycle runs as the dry run's did, which ends
completed with the checks of tests/e2e; one case per command also runs the rest of the
cycle to the end to show it. Every point runs with ROTATOR_FULL_CRASH_MATRIX=1; otherwise a
sample that moves each day (every 3rd point under CI=true, every 13th else).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.crash_support import (
    GCP,
    GOOGLE,
    KILLED,
    PHASES,
    RESEND,
    SHARED,
    STRIPE,
    CrashWorld,
    Snapshot,
    client_id,
    full_matrix,
    interruption_shown,
    left_open,
    matrix_mode,
    restored,
    sample,
    seeded_world,
    snapshot,
    verify_audit,
)

# The full matrix is the slow part of the suite (see docs/reliability.md for the modes).
pytestmark = [pytest.mark.slow] if full_matrix() else []
WORKERS = max(2, min(8, 2 * (os.cpu_count() or 1)))
ENVS = ("local", "staging", "production")
# The commands one of whose crash cases also runs the rest of the cycle to its end.
REST_OF_CYCLE = ("run month 1", "supply google staging", "run promote", "run month 4")


@dataclass(frozen=True)
class Command:
    """One command of the cycle: when, what, and what the person does just before it."""

    label: str
    at: str | None
    args: tuple[str, ...]
    actor: str = "cron@crash"
    prepare: Callable[[CrashWorld], str | None] | None = None

    def run(self, w: CrashWorld, kill_at: tuple[int, str] | None = None) -> Any:
        if self.at:
            w.at(self.at)
        value = self.prepare(w) if self.prepare else None
        return self.again(w, value, kill_at)

    def again(
        self, w: CrashWorld, value: str | None, kill_at: tuple[int, str] | None = None
    ) -> Any:
        data = value + "\n" if value else None
        return w.rotate(*self.args, input=data, actor=self.actor, kill_at=kill_at)


def _supply(name: str, env: str | None) -> Callable[[CrashWorld], str | None]:
    def create(w: CrashWorld) -> str | None:
        return w.person.create(name, client_id(w, env) if env else None)

    return create


def _revoke_old(name: str, env: str | None) -> Callable[[CrashWorld], str | None]:
    def revoke(w: CrashWorld) -> str | None:
        w.person.revoke_old(name, client_id(w, env) if env else None)
        return None

    return revoke


def _cycle() -> list[Command]:
    commands = [Command("run month 1", "2027-01-01T02:30", ("run",))]
    commands.append(
        Command("supply stripe", None, ("supply", STRIPE), "ops@crash", _supply(STRIPE, None))
    )
    for env in ENVS:
        commands.append(
            Command(
                f"supply google {env}",
                None,
                ("supply", GOOGLE, "--env", env),
                "ops@crash",
                _supply(GOOGLE, env),
            )
        )
    for name in SHARED:
        commands.append(Command(f"approve {name}", None, ("approve", name, "--note", "q1")))
    commands.append(Command("approve google", None, ("approve", GOOGLE, "--env", "production")))
    commands += [
        Command("run month 2", "2027-02-01T02:30", ("run",)),
        Command("run promote", "2027-03-02T02:30", ("run",)),
        Command("run monitor", "2027-03-04T02:30", ("run",)),
        Command("run month 4", "2027-04-01T02:30", ("run",)),
        Command(
            "confirm stripe",
            None,
            ("confirm", STRIPE, "--step", "revoke"),
            "ops@crash",
            _revoke_old(STRIPE, None),
        ),
    ]
    for env in ENVS:
        commands.append(
            Command(
                f"confirm google {env}",
                None,
                ("confirm", GOOGLE, "--env", env, "--step", "revoke"),
                "ops@crash",
                _revoke_old(GOOGLE, env),
            )
        )
    for name in SHARED:
        commands.append(Command(f"review {name}", None, ("review", name, "--note", "ok")))
    for env in ENVS:
        commands.append(
            Command(f"review google {env}", None, ("review", GOOGLE, "--env", env, "--note", "ok"))
        )
    return commands


CYCLE = _cycle()


def observe(w: CrashWorld) -> dict[str, Any]:
    """What must not differ from the uninterrupted run: states, credentials, deployed values."""
    seen: dict[str, Any] = {}
    seen["rotations"] = sorted(
        (r["name"], r["scope_env"], r["kind"], r["cycle"] or "", r["state"]) for r in w.rotations()
    )
    counts = w.credential_counts()
    seen["credentials"] = {
        "resend": counts["resend"],
        "stripe": counts["stripe"],
        "gcp": counts["gcp_api_keys"],
        "google": {c: v["enabled_secrets"] for c, v in counts["google_oauth"].items()},
    }
    units = [(name, "shared") for name in SHARED] + [(GOOGLE, env) for env in ENVS]
    held: dict[str, dict[str, str]] = {}
    for name, scope in units:
        versions = w.versions(name, scope)
        held[f"{name}/{scope}"] = {v["fingerprint"]: v["state"] for v in versions}
        if name in (RESEND, GCP):
            # Compared on the last part: Google names a key by project id or number.
            refs = {
                str(v["provider_ref"]).rsplit("/", 1)[-1]
                for v in versions
                if v["state"] != "revoked"
            }
            keys = w.live_resend_ids() if name == RESEND else w.live_gcp_keys()
            live = {k.rsplit("/", 1)[-1] for k in keys}
            seen[f"orphans {name}"] = sorted(live - refs)
            seen[f"missing {name}"] = sorted(refs - live)
    deployed: dict[str, str] = {}
    for name in (*SHARED, GOOGLE):
        for where, value in w.deployed(name).items():
            env = where.split("/")[0]
            scope = "shared" if name in SHARED else env
            deployed[f"{name} {where}"] = held[f"{name}/{scope}"].get(w.fingerprint(value), "?")
    seen["deployed"] = deployed
    return seen


@dataclass
class DryRun:
    snapshots: list[Snapshot]
    observed: list[dict[str, Any]]
    counts: list[int]
    end: dict[str, Any]


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory: pytest.TempPathFactory) -> DryRun:
    root = tmp_path_factory.mktemp("crash-quarterly")
    snaps, observed, counts = [], [], []
    with seeded_world(root / "seed") as w:
        for i, command in enumerate(CYCLE):
            if command.at:
                w.at(command.at)
            snaps.append(snapshot(w, root / f"before-{i}"))
            done = command.run(w)
            assert done.returncode == 0, (command.label, done.stdout + done.stderr)
            counts.append(len(w.killer.seen))
            observed.append(observe(w))
        assert not w.production_unhealthy()
        assert verify_audit(w) == ""
        states = {r[4] for r in observed[-1]["rotations"] if r[3] == "2027-01"}
        assert states == {"completed"}, observed[-1]["rotations"]
    return DryRun(snaps, observed, counts, observed[-1])


def _crash_case(dry: DryRun, root: Path, index: int, n: int, phase: str, rest: bool) -> list[str]:
    command = CYCLE[index]
    label = f"{command.label} request {n} {phase}"
    with restored(dry.snapshots[index], root) as w:
        start_seq = max((e["seq"] for e in w.events()), default=0)
        value = command.prepare(w) if command.prepare else None
        killed = command.again(w, value, kill_at=(n, phase))
        if killed.returncode != KILLED:
            return [f"{label}: not killed (exit {killed.returncode})"]
        # A kill inside a step leaves it open; one between steps (a monitoring health
        # check, a supply's check of the value) leaves nothing to resume.
        interrupted = bool(left_open([e for e in w.events() if e["seq"] > start_seq]))
        w.later(minutes=2)  # the next run comes later: cron's next tick, or a person
        again = command.again(w, value)
        if again.returncode == 4 and command.prepare and "no value is awaited" in again.stderr:
            # The killed `supply` had recorded the value: it is not asked for twice, and
            # the steps after it are cron's, which carries on where the kill stopped them.
            again = w.rotate("run")
        if again.returncode != 0:
            out = (again.stdout + again.stderr)[-800:]
            return [f"{label}: the re-run exited {again.returncode}: {out}"]
        problems = []
        seen = observe(w)
        for key, expected in dry.observed[index].items():
            if seen.get(key) != expected:
                problems.append(f"{label}: {key} is {seen.get(key)}, expected {expected}")
        if w.production_unhealthy():
            problems.append(f"{label}: production unhealthy: {w.production_unhealthy()[:2]}")
        events = [e for e in w.events() if e["seq"] > start_seq]
        if interrupted and not interruption_shown(events):
            problems.append(f"{label}: the trail shows no interrupted step completed later")
        audit = verify_audit(w)
        if audit:
            problems.append(f"{label}: {audit}")
        if rest and not problems:
            for later in CYCLE[index + 1 :]:
                done = later.run(w)
                if done.returncode != 0:
                    problems.append(f"{label}: then {later.label} exited {done.returncode}")
                    break
            else:
                if observe(w) != dry.end:
                    problems.append(f"{label}: the cycle ended differently: {observe(w)}")
                if w.production_unhealthy() or verify_audit(w):
                    problems.append(f"{label}: unhealthy or unverifiable at the end of the cycle")
    shutil.rmtree(root, ignore_errors=True)
    return problems


def test_quarterly_cycle_survives_a_kill_at_every_request(dry_run: DryRun, tmp_path: Path) -> None:
    points = [
        (i, n, phase)
        for i, count in enumerate(dry_run.counts)
        for n in range(1, count + 1)
        for phase in PHASES
    ]
    cases = sample(points)
    # One case per command runs the rest of the cycle to its end.
    middles = {
        i: (i, (dry_run.counts[i] + 1) // 2, "after")
        for i, command in enumerate(CYCLE)
        if command.label in REST_OF_CYCLE
    }
    print(f"\nquarterly requests per command: {dry_run.counts}")
    started = time.monotonic()
    with ThreadPoolExecutor(WORKERS) as pool:
        results = list(
            pool.map(
                lambda c: _crash_case(
                    dry_run, tmp_path / f"{c[0]}-{c[1]}-{c[2]}", *c, c in middles.values()
                ),
                sorted(set(cases) | set(middles.values())),
            )
        )
    problems = [p for found in results for p in found]
    per_command = {CYCLE[i].label: c for i, c in enumerate(dry_run.counts) if c}
    print(
        f"\nquarterly: {sum(dry_run.counts)} requests in {len(per_command)} commands "
        f"{per_command}; {len(set(cases) | set(middles.values()))} crash cases "
        f"({matrix_mode()}), {time.monotonic() - started:.0f} s"
    )
    assert not problems, f"{len(problems)} problems ({matrix_mode()}):\n" + "\n".join(
        p[:600] for p in problems[:12]
    )
