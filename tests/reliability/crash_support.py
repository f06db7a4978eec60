"""Kill `rotate` at a chosen sandbox request, resume it, and check that nothing was lost.

A `CrashWorld` is the end-to-end world of tests/e2e (an in-process sandbox on a simulated
clock, the CLI as a subprocess) with two additions:

* `rotate(..., kill_at=(n, phase))` starts the command with `subprocess.Popen` and, when
  the sandbox receives the command's n-th request, SIGKILLs it from the sandbox's request
  hook, in phase "before" (not yet applied) or "after" (applied, answer not yet sent);
  the hook then drops the connection, so the answer never arrives.
* `Snapshot`: a world frozen between two commands (state directory, inventory folder,
  the sandbox's provider state, the clock), restored into a fresh sandbox in milliseconds,
  so each crash case starts from the moment before its command without replaying the
  commands before it.

The checks read the SQLite database directly (read-only) and the sandbox's state, so a
crash case costs the killed command, its re-run and one `rotate audit verify`.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from rotator.demo import Person, SimulatedClock
from rotator.sandbox import Sandbox
from rotator.sandbox.inventory import sandbox_environment, sandbox_inventory
from rotator.sandbox.server import DropConnectionError

LONDON = ZoneInfo("Europe/London")
RESEND = "BANDOFBAKERS_RESEND_API_KEY"
STRIPE = "BANDOFBAKERS_STRIPE_SECRET_KEY"
GCP = "BANDOFBAKERS_GCP_IDENTITY_PLATFORM_API_KEY"
GOOGLE = "GOOGLE_CLIENT_SECRET"
SHARED = (RESEND, STRIPE, GCP)
PHASES = ("before", "after")
# The provider state a snapshot copies; the rest of the sandbox (server, locks) is new.
_WORLD_PARTS = ("resend", "stripe", "google", "apikeys", "cloudflare", "history", "requests")
KILLED = -signal.SIGKILL
# Variables of the test process that would point a `rotate` child at another state.
_POINTING_ELSEWHERE = ("ROTATOR_DATABASE_URL", "ROTATOR_MASTER_KEY", "ROTATOR_MASTER_KEY_FILE")


def london(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=LONDON)


def full_matrix() -> bool:
    """Return True when every crash point runs: asked for with ROTATOR_FULL_CRASH_MATRIX=1."""
    return os.environ.get("ROTATOR_FULL_CRASH_MATRIX") == "1"


def sample_every() -> int:
    """Run every n-th crash point: 5 under CI=true, 13 otherwise (ROTATOR_CRASH_SAMPLE_EVERY)."""
    default = "5" if os.environ.get("CI") == "true" else "13"
    return max(1, int(os.environ.get("ROTATOR_CRASH_SAMPLE_EVERY") or default))


def sample_seed() -> int:
    """The sample's seed: ROTATOR_CRASH_SEED, else today's date (one offset per day)."""
    text = os.environ.get("ROTATOR_CRASH_SEED")
    return int(text) if text else date.today().toordinal()


def matrix_mode() -> str:
    """Say which points run, and how to run the same sample again."""
    if full_matrix():
        return "full"
    every = sample_every()
    return (
        f"sampled: every {every} from offset {sample_seed() % every}, "
        f"ROTATOR_CRASH_SEED={sample_seed()} ROTATOR_CRASH_SAMPLE_EVERY={every}"
    )


def sample(points: list[Any], every: int | None = None) -> list[Any]:
    """Return all points under the full matrix, else every `every`-th one and the last.

    The first point taken moves with the seed (today's date unless ROTATOR_CRASH_SEED is
    set), so `every` consecutive days of runs together cover every point.
    """
    every = every or sample_every()
    if full_matrix() or len(points) <= 2 or every <= 1:
        return points
    picked = points[sample_seed() % every :: every]
    return picked if points[-1] in picked else [*picked, points[-1]]


class Killer:
    """The sandbox's request hook: count a command's requests, SIGKILL it at one of them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pid: int | None = None
        self.target: tuple[int, str] | None = None
        self.count = 0
        self.seen: list[tuple[int, str, str]] = []
        self.killed_at: tuple[int, str, str, str] | None = None

    def arm(self, pid: int | None, target: tuple[int, str] | None) -> None:
        with self.lock:
            self.pid, self.target, self.count, self.seen = pid, target, 0, []
            self.killed_at = None

    def disarm(self) -> None:
        """Stop killing; keep what was seen, for the dry run's count."""
        with self.lock:
            self.pid, self.target = None, None

    def hook(self, n: int, method: str, path: str, phase: str) -> None:
        with self.lock:
            if phase == "before":
                self.count += 1
                self.seen.append((self.count, method, path))
            if self.pid is None or self.target is None or self.killed_at is not None:
                return
            if (self.count, phase) != self.target:
                return
            os.kill(self.pid, signal.SIGKILL)
            self.killed_at = (self.count, phase, method, path)
        raise DropConnectionError


@dataclass
class Snapshot:
    """A world between two commands: files, provider state, clock, the person's notes."""

    root: Path
    moment: datetime
    parts: dict[str, Any]
    person: tuple[list[str], dict[str, list[str]]]
    seeded: dict[str, Any]
    database_url: str | None = None


@dataclass
class CrashWorld:
    sandbox: Sandbox
    clock: SimulatedClock
    root: Path
    env: dict[str, str]
    person: Person
    seeded: dict[str, Any]
    killer: Killer
    outputs: list[str] = field(default_factory=list)

    @property
    def home(self) -> Path:
        return self.root / "state"

    @property
    def database(self) -> Path:
        return self.home / "rotator.db"

    def at(self, when: str | datetime) -> None:
        self.clock.set(london(when) if isinstance(when, str) else when)

    def later(self, **delta: float) -> None:
        self.clock.set(self.clock() + timedelta(**delta))

    def rotate(
        self,
        *args: str,
        input: str | None = None,
        actor: str = "cron@crash",
        kill_at: tuple[int, str] | None = None,
        extra_env: dict[str, str] | None = None,
        timeout: float = 300,
    ) -> subprocess.CompletedProcess[str]:
        """Run one command; with `kill_at`, SIGKILL it at that request of this command."""
        env = {
            **{k: v for k, v in os.environ.items() if k not in _POINTING_ELSEWHERE},
            **self.env,
            **(extra_env or {}),
            "ROTATOR_FAKE_TIME": self.clock().isoformat(),
            "ROTATOR_ACTOR": actor,
            "ROTATOR_NO_DELAY": "1",
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "rotator", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.killer.arm(proc.pid if kill_at else None, kill_at)
        try:
            out, err = proc.communicate(input=input, timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            raise AssertionError(f"rotate {' '.join(args)} hung: {out}{err}") from None
        finally:
            self.killer.disarm()
        self.outputs.extend([out, err])
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    # ------------------------------------------------------------------ reading state
    @contextmanager
    def db(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(f"file:{self.database}?mode=ro", uri=True, timeout=30)
        conn.row_factory = sqlite3.Row
        try:
            yield conn
        finally:
            conn.close()

    def rotations(self) -> list[dict[str, Any]]:
        with self.db() as conn:
            rows = conn.execute(
                "SELECT r.id, r.kind, r.state, r.cycle, s.name, s.scope_env FROM rotation r "
                "JOIN secret s ON s.id = r.secret_id ORDER BY r.created_at"
            ).fetchall()
        return [dict(r) for r in rows]

    def versions(self, name: str, scope: str = "shared") -> list[dict[str, Any]]:
        with self.db() as conn:
            rows = conn.execute(
                "SELECT v.id, v.state, v.provider_ref, v.rotation_id, v.fingerprint, "
                "v.ciphertext IS NOT NULL "
                "AS stored FROM credential_version v JOIN secret s ON s.id = v.secret_id "
                "WHERE s.name = ? AND s.scope_env = ? ORDER BY v.created_at",
                (name, scope),
            ).fetchall()
        return [dict(r) for r in rows]

    def events(self, rotation_id: str | None = None) -> list[dict[str, Any]]:
        query = "SELECT seq, event_type, rotation_id, entry FROM audit_event"
        params: tuple[Any, ...] = ()
        if rotation_id is not None:
            query += " WHERE rotation_id = ?"
            params = (rotation_id,)
        with self.db() as conn:
            rows = conn.execute(query + " ORDER BY seq", params).fetchall()
        out = []
        for row in rows:
            entry = json.loads(row["entry"])
            details = entry.get("details") or {}
            out.append(
                {"seq": row["seq"], "type": row["event_type"], "rotation": row["rotation_id"]}
                | details
            )
        return out

    # ------------------------------------------------------------------ the provider side
    def deployed(self, variable: str) -> dict[str, str]:
        """Return the value of `variable` that each remote environment runs with now."""
        world = self.sandbox.world
        found: dict[str, str] = {}
        with world.lock:
            for env, binding in world.environments.items():
                script = world.cloudflare.scripts[binding.workers_script]
                if variable in script.secrets:
                    found[f"{env}/workers"] = script.secrets[variable][1]
                project = world.cloudflare.projects[binding.pages_project]
                live = project.live_deployment(binding.pages_config)
                var = live.env_vars.get(variable) if live else None
                if var is not None:
                    found[f"{env}/pages"] = str(var.get("value"))
        return found

    def fingerprint(self, value: str) -> str:
        """Return the tool's fingerprint of `value` (HMAC under this world's key)."""
        from audit.fingerprint import fingerprint
        from rotator.keys import FINGERPRINT_FILE
        from rotator.secret import Secret

        key = base64.b64decode((self.home / "keys" / FINGERPRINT_FILE).read_bytes().strip())
        return fingerprint(key, Secret(value))

    def live_resend_keys(self) -> list[str]:
        with self.sandbox.world.lock:
            return [k.name for k in self.sandbox.world.resend.keys.values()]

    def live_resend_ids(self) -> list[str]:
        with self.sandbox.world.lock:
            return [k.id for k in self.sandbox.world.resend.keys.values()]

    def live_gcp_keys(self) -> list[str]:
        world = self.sandbox.world
        with world.lock:
            now = world.now()
            return [k.name for k in world.apikeys.keys.values() if k.live(now)]

    def credential_counts(self) -> dict[str, Any]:
        return dict(self.sandbox.state()["credentials"])

    def production_unhealthy(self) -> list[Any]:
        return [
            h for h in self.sandbox.health_history if h.environment == "production" and not h.ok
        ]


# ---------------------------------------------------------------------- snapshots
def copy_parts(world: Any) -> dict[str, Any]:
    """Deep-copy the sandbox's provider state (what `restore_parts` puts back)."""
    with world.lock:
        # Service accounts hold a private key object: shared, never changed by requests.
        memo = {id(a): a for a in world.google.accounts.values()}
        return {name: copy.deepcopy(getattr(world, name), memo) for name in _WORLD_PARTS}


def restore_parts(world: Any, parts: dict[str, Any]) -> None:
    """Put a copy of `parts` (from `copy_parts`) into a fresh sandbox's world."""
    with world.lock:
        memo = {id(a): a for a in parts["google"].accounts.values()}
        for name, part in parts.items():
            setattr(world, name, copy.deepcopy(part, memo))


def snapshot(w: CrashWorld, root: Path) -> Snapshot:
    """Freeze `w` into `root` (files copied, provider state deep-copied)."""
    if root.exists():
        shutil.rmtree(root)
    shutil.copytree(w.root, root, ignore=shutil.ignore_patterns("run.lock"))
    person = (list(w.person.stripe_keys), copy.deepcopy(w.person.oauth_secrets))
    return Snapshot(
        root,
        w.clock(),
        copy_parts(w.sandbox.world),
        person,
        w.seeded,
        w.env.get("ROTATOR_DATABASE_URL"),
    )


@contextmanager
def restored(snap: Snapshot, root: Path) -> Iterator[CrashWorld]:
    """Start a fresh sandbox holding `snap`'s state, with `snap`'s files under `root`."""
    if root.exists():
        shutil.rmtree(root)
    shutil.copytree(snap.root, root)
    clock = SimulatedClock(snap.moment)
    killer = Killer()
    with (
        Sandbox(faults="none", seed=3, clock=clock, on_request=killer.hook) as sandbox,
        httpx.Client(timeout=10) as http,
    ):
        restore_parts(sandbox.world, snap.parts)
        w = _world(sandbox, clock, root, http, snap.seeded, killer)
        w.person.stripe_keys = list(snap.person[0])
        w.person.oauth_secrets = copy.deepcopy(snap.person[1])
        if snap.database_url:
            w.env["ROTATOR_DATABASE_URL"] = snap.database_url
        yield w


def _world(
    sandbox: Sandbox,
    clock: SimulatedClock,
    root: Path,
    http: httpx.Client,
    seeded: dict[str, Any],
    killer: Killer,
) -> CrashWorld:
    inventory = sandbox_inventory(sandbox, root / "world", notify_email=False)
    env = {
        "ROTATOR_HOME": str(root / "state"),
        "ROTATOR_INVENTORY": str(inventory),
        **sandbox_environment(sandbox),
    }
    return CrashWorld(sandbox, clock, root, env, Person(sandbox.base_url, http), seeded, killer)


@contextmanager
def seeded_world(root: Path, start: str = "2027-01-01T02:30") -> Iterator[CrashWorld]:
    """Build Band of Bakers in a new sandbox: `rotate init`, every value imported."""
    clock = SimulatedClock(london(start))
    killer = Killer()
    with (
        Sandbox(faults="none", seed=3, clock=clock, on_request=killer.hook) as sandbox,
        httpx.Client(timeout=10) as http,
    ):
        seeded = sandbox.seed_bandofbakers()
        w = _world(sandbox, clock, root, http, seeded, killer)
        done = w.rotate("init")
        assert done.returncode == 0, done.stderr
        import_all(w)
        yield w


def import_all(w: CrashWorld) -> None:
    for label, value in w.seeded.items():
        name, _, scope = label.partition("@")
        args = ["import", name, "--ref", value.ref] + (["--env", scope] if scope else [])
        done = w.rotate(*args, input=value.value + "\n", actor="ops@crash")
        assert done.returncode == 0, done.stderr
        if name == STRIPE:
            w.person.stripe_keys.append(value.ref)
        if name == GOOGLE:
            w.person.oauth_secrets.setdefault(value.options["client_id"], []).append(value.ref)


def client_id(w: CrashWorld, env: str) -> str:
    return str(w.seeded[f"{GOOGLE}@{env}"].options["client_id"])


# ---------------------------------------------------------------------- checks
def interruption_shown(events: list[dict[str, Any]]) -> list[str]:
    """Return the steps whose trail shows a `step.started` never finished, then a later one done.

    An attempt ends with `step.done`, `step.failed` or `step.awaiting_person`; a killed one
    ends with nothing, and the next `step.started` of that step (or none) follows it.
    """
    open_steps: dict[str, int] = {}
    interrupted: list[str] = []
    resumed: set[str] = set()
    for event in events:
        step = event.get("step")
        if event["type"] == "step.started" and isinstance(step, str):
            if step in open_steps:
                interrupted.append(step)
            open_steps[step] = event["seq"]
        elif event["type"] in ("step.done", "step.failed", "step.awaiting_person") and step:
            if step in open_steps and step in interrupted:
                resumed.add(step)
            open_steps.pop(str(step), None)
    return [s for s in interrupted if s in resumed]


def left_open(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Return the (rotation, step) pairs started in `events` and never finished there."""
    open_steps: set[tuple[str, str]] = set()
    for event in events:
        key = (str(event.get("rotation")), str(event.get("step")))
        if event["type"] == "step.started":
            open_steps.add(key)
        elif event["type"] in ("step.done", "step.failed", "step.awaiting_person"):
            open_steps.discard(key)
    return sorted(open_steps)


def verify_audit(w: CrashWorld) -> str:
    """Run `rotate audit verify`; return '' when it passes, else its output."""
    done = w.rotate("audit", "verify")
    return "" if done.returncode == 0 else f"audit verify exit {done.returncode}: {done.stdout}"
