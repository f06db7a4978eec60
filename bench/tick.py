"""Time the cron tick (`Engine.run`) over large inventories when nothing, or 1%, is due."""

from __future__ import annotations

import cProfile
import io
import json
import pstats
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bench.common import (
    ROOT,
    ROTATE,
    Row,
    Section,
    fmt_s,
    resend_inventory,
    rotator_home,
    run_child,
    secret_name,
    verdict,
)

GOAL_10K = 2.0
LONDON = ZoneInfo("Europe/London")
CYCLE = "2027-01"
# Month 2 of the January cycle: every rotation is validated and waits for month 3.
IDLE_MOMENT = datetime(2027, 2, 15, 2, 30, tzinfo=LONDON).astimezone(UTC)
# Month 1: the cycle is open and every unit already has its rotation (plan_cycles checks).
MONTH1_MOMENT = datetime(2027, 1, 15, 2, 30, tzinfo=LONDON).astimezone(UTC)
NEXT_CHECK = datetime(2027, 3, 1, 0, 0, tzinfo=LONDON).astimezone(UTC)


def _utc(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


def populate(url: str, count: int, *, history: int = 0, audit_events: int = 0) -> None:
    """Bulk-insert `count` secrets, each with current and pending versions and one rotation.

    `history` adds that many completed past rotations per secret (with a revoked version
    and four step records each); `audit_events` adds a valid synthetic chain of events.
    """
    from sqlalchemy import insert

    from rotator.store.db import open_store
    from rotator.store.models import (
        AuditEvent,
        CredentialVersion,
        Rotation,
        SecretRecord,
        StepRecord,
    )

    store = open_store(url)
    created = _utc(2026, 1, 1)
    staged = _utc(2027, 1, 6, 3).isoformat()
    chunk = 20_000
    with store.engine.begin() as conn:
        for lo in range(1, count + 1, chunk):
            ids = range(lo, min(count, lo + chunk - 1) + 1)
            conn.execute(
                insert(SecretRecord.__table__),  # type: ignore[attr-defined]
                [
                    {
                        "id": i,
                        "name": secret_name(i),
                        "scope_env": "shared",
                        "provider": "resend",
                        "created_at": created,
                    }
                    for i in ids
                ],
            )
            versions: list[dict[str, Any]] = []
            rotations: list[dict[str, Any]] = []
            steps: list[dict[str, Any]] = []
            for i in ids:
                for state in ("current", "pending"):
                    versions.append(
                        {
                            "id": f"v{state[0]}{i:010d}",
                            "secret_id": i,
                            "state": state,
                            "provider_ref": f"key-{state}-{i}",
                            "fingerprint": "f" * 64,
                            "ciphertext": b"\0" * 60,
                            "key_id": "bench",
                            "created_at": created,
                            "promoted_at": created if state == "current" else None,
                            "revoked_at": None,
                            "notes": "{}",
                        }
                    )
                rotations.append(
                    {
                        "id": f"r{i:015d}",
                        "secret_id": i,
                        "kind": "quarterly",
                        "cycle": CYCLE,
                        "state": "validated",
                        "active": True,
                        "fence": 3,
                        "next_check_at": NEXT_CHECK,
                        "attempts": 0,
                        "actor": "cron@bench",
                        "created_at": _utc(2027, 1, 1),
                        "updated_at": _utc(2027, 2, 2),
                        "finished_at": None,
                        "facts": json.dumps({"staged_at": staged}),
                    }
                )
                for h in range(history):
                    rid = f"h{h:03d}{i:012d}"
                    rotations.append(
                        {
                            "id": rid,
                            "secret_id": i,
                            "kind": "quarterly",
                            "cycle": f"20{10 + h}-01",
                            "state": "completed",
                            "active": False,
                            "fence": 9,
                            "next_check_at": None,
                            "attempts": 0,
                            "actor": "cron@bench",
                            "created_at": _utc(2010 + h, 1, 1),
                            "updated_at": _utc(2010 + h, 4, 20),
                            "finished_at": _utc(2010 + h, 4, 20),
                            "facts": "{}",
                        }
                    )
                    versions.append(
                        {
                            "id": f"x{h:03d}{i:012d}",
                            "secret_id": i,
                            "state": "revoked",
                            "provider_ref": f"old-{h}-{i}",
                            "fingerprint": "e" * 64,
                            "ciphertext": None,
                            "key_id": None,
                            "created_at": _utc(2010 + h, 1, 2),
                            "promoted_at": None,
                            "revoked_at": _utc(2010 + h, 4, 2),
                            "notes": "{}",
                        }
                    )
                    for step in ("generate", "stage", "promote", "revoke"):
                        steps.append(
                            {
                                "rotation_id": rid,
                                "step": step,
                                "status": "done",
                                "attempt": 1,
                                "actor": "cron@bench",
                                "started_at": _utc(2010 + h, 1, 2),
                                "finished_at": _utc(2010 + h, 1, 2),
                                "detail": "{}",
                            }
                        )
            conn.execute(insert(CredentialVersion.__table__), versions)  # type: ignore[attr-defined]
            conn.execute(insert(Rotation.__table__), rotations)  # type: ignore[attr-defined]
            if steps:
                conn.execute(insert(StepRecord.__table__), steps)  # type: ignore[attr-defined]
        if audit_events:
            from audit.synthetic import synthetic_entries

            batch: list[dict[str, Any]] = []
            for seq, stored, digest in synthetic_entries(audit_events):
                batch.append(
                    {
                        "seq": seq,
                        "entry": stored,
                        "entry_hash": digest,
                        "time": _utc(2026, 1, 1) + timedelta(seconds=seq),
                        "actor": "cron",
                        "secret": secret_name(seq % count + 1),
                        "environment": "staging",
                        "rotation_id": f"rot-{seq // 16}",
                        "event_type": "rotation.step",
                    }
                )
                if len(batch) == chunk:
                    conn.execute(insert(AuditEvent.__table__), batch)  # type: ignore[attr-defined]
                    batch = []
            if batch:
                conn.execute(insert(AuditEvent.__table__), batch)  # type: ignore[attr-defined]
    store.dispose()


def _make_due(url: str, share: float, moment: datetime) -> int:
    """Make every 1/share-th secret's open rotation due at `moment`; return how many."""
    from sqlalchemy import update

    from rotator.store.db import create
    from rotator.store.models import Rotation

    step = max(1, round(1 / share))
    table = Rotation.__table__  # type: ignore[attr-defined]
    engine = create(url)
    with engine.begin() as conn:
        result = conn.execute(
            update(table)
            .where(table.c.active.is_(True), table.c.secret_id % step == 1 % step)
            .values(next_check_at=moment - timedelta(hours=1))
        )
        count = int(result.rowcount)
    engine.dispose()
    return count


def _tick(inventory: Path, url: str, moment: datetime) -> tuple[float, float, int]:
    """Run one in-process tick; return (inventory load s, run s, outcomes)."""
    from rotator import inventory as inv_mod
    from rotator.engine import Engine
    from rotator.runtime import Runtime

    started = time.perf_counter()
    inv = inv_mod.load(inventory)
    loaded = time.perf_counter()
    engine = Engine(Runtime(inventory=inv, store_url=url, clock=lambda: moment))
    outcomes = engine.run()
    finished = time.perf_counter()
    engine.rt.close()
    return loaded - started, finished - loaded, len(outcomes)


def _median_tick(
    inventory: Path, url: str, moment: datetime, runs: int, before: Callable[[], object] | None
) -> tuple[float, float, int]:
    loads, ticks, n = [], [], 0
    for _ in range(runs):
        if before is not None:
            before()
        load_s, run_s, n = _tick(inventory, url, moment)
        loads.append(load_s)
        ticks.append(run_s)
    return statistics.median(loads), statistics.median(ticks), n


def _profile(inventory: Path, url: str, moment: datetime, top: int = 12) -> list[str]:
    profile = cProfile.Profile()
    profile.enable()
    _tick(inventory, url, moment)
    profile.disable()
    stream = io.StringIO()
    stats = pstats.Stats(profile, stream=stream)
    stats.sort_stats("cumulative")
    lines = []
    for func, (_cc, nc, tt, ct, _callers) in sorted(
        stats.stats.items(),  # type: ignore[attr-defined]
        key=lambda kv: kv[1][3],
        reverse=True,
    ):
        filename, line, name = func
        if not any(p in filename for p in ("/rotator/", "/schedules/", "/audit/", "tomllib")):
            continue
        where = filename.split("/work/main/")[-1] if "/work/main/" in filename else filename
        lines.append(f"{where}:{line}({name}) {nc} calls, {ct:.3f} s cumulative, {tt:.3f} s own")
        if len(lines) >= top:
            break
    return lines


def run(
    *,
    sizes: tuple[int, ...] = (1_000, 10_000, 100_000),
    runs: int = 3,
    history: int = 8,
    audit_events: int = 200_000,
    cli_size: int = 10_000,
) -> Section:
    section = Section("2. The cron tick at scale")
    raw: dict[str, Any] = {}
    for size in sizes:
        with rotator_home(f"tick{size}") as (tmp, env):
            inventory = resend_inventory(Path(env["ROTATOR_INVENTORY"]), size)
            url = f"sqlite:///{tmp / 'state' / 'rotator.db'}"
            started = time.perf_counter()
            populate(url, size)
            built = time.perf_counter() - started
            load_s, idle_s, _ = _median_tick(inventory, url, IDLE_MOMENT, runs, None)
            _, month1_s, _ = _median_tick(inventory, url, MONTH1_MOMENT, runs, None)
            due = max(1, size // 100)
            _, due_s, due_n = _median_tick(
                inventory, url, IDLE_MOMENT, runs, partial(_make_due, url, 0.01, IDLE_MOMENT)
            )
            total = load_s + idle_s
            row: dict[str, Any] = {
                "populate_s": built,
                "load": load_s,
                "idle": idle_s,
                "month1": month1_s,
                "due_1pct": due_s,
                "due_n": due_n,
            }
            goal = f"≤ {GOAL_10K} s" if size == 10_000 else "-"
            ok = verdict(total <= GOAL_10K) if size == 10_000 else "info"
            section.rows += [
                Row(
                    f"{size:,} secrets, nothing due (month 2): inventory load + `Engine.run`",
                    f"{fmt_s(total)} ({fmt_s(load_s)} + {fmt_s(idle_s)})",
                    goal,
                    "-",
                    ok,
                ),
                Row(
                    f"{size:,} secrets, nothing due, month 1 (cycle already planned for all)",
                    f"{fmt_s(load_s + month1_s)} ({fmt_s(load_s)} + {fmt_s(month1_s)})",
                ),
                Row(
                    f"{size:,} secrets, 1% due ({due} rotations, each waits for month 3)",
                    f"{fmt_s(load_s + due_s)} ({fmt_s(load_s)} + {fmt_s(due_s)}); "
                    f"{fmt_s((due_s - idle_s) / due)} per due rotation",
                ),
            ]
            if size == cli_size:
                child = run_child([ROTATE, "run"], env={**env, "ROTATOR_NO_DELAY": "1"}, cwd=ROOT)
                row["cli"] = child.seconds
                section.rows.append(
                    Row(
                        f"{size:,} secrets: `rotate run` as cron runs it (child process, "
                        "real clock, nothing due)",
                        fmt_s(child.seconds),
                        f"≤ {GOAL_10K} s",
                        "-",
                        verdict(child.seconds <= GOAL_10K and child.code == 0),
                    ),
                )
                row["profile"] = _profile(inventory, url, IDLE_MOMENT)
                section.notes.append(
                    f"Where the time goes at {size:,} secrets, nothing due (cProfile of inventory "
                    "load + `Engine.run`, rotator code and tomllib by cumulative time):\n\n"
                    + "\n".join(f"    {line}" for line in row["profile"])
                )
            raw[str(size)] = row
    if history and cli_size in sizes:
        size = cli_size
        with rotator_home("tickhist") as (tmp, env):
            inventory = resend_inventory(Path(env["ROTATOR_INVENTORY"]), size)
            url = f"sqlite:///{tmp / 'state' / 'rotator.db'}"
            populate(url, size, history=history, audit_events=audit_events)
            load_s, idle_s, _ = _median_tick(inventory, url, IDLE_MOMENT, runs, None)
            _, due_s, _ = _median_tick(
                inventory, url, IDLE_MOMENT, runs, partial(_make_due, url, 0.01, IDLE_MOMENT)
            )
            base = raw[str(size)]
            section.rows += [
                Row(
                    f"{size:,} secrets + history ({history} past cycles each, "
                    f"{audit_events:,} audit events), nothing due",
                    f"{fmt_s(load_s + idle_s)} ({fmt_s(load_s)} + {fmt_s(idle_s)})",
                    f"≈ without history ({fmt_s(base['load'] + base['idle'])})",
                    "-",
                    verdict(idle_s <= max(2 * base["idle"], base["idle"] + 0.05)),
                ),
                Row(
                    f"{size:,} secrets + history, 1% due",
                    f"{fmt_s(load_s + due_s)} ({fmt_s(load_s)} + {fmt_s(due_s)})",
                    f"≈ without history ({fmt_s(base['load'] + base['due_1pct'])})",
                    "-",
                    verdict(due_s <= max(2 * base["due_1pct"], base["due_1pct"] + 0.05)),
                ),
            ]
            raw["history"] = {"load": load_s, "idle": idle_s, "due_1pct": due_s}
    section.notes.insert(
        0,
        "In process, on SQLite, with a fixed clock: each secret has a current and a pending "
        f"version and one quarterly rotation of cycle {CYCLE} in state `validated`, "
        "`next_check_at` at month 3 (bulk-inserted, not driven). Month 2 is the common idle "
        "tick; in month 1 `plan_cycles` must also confirm every unit has its cycle. A due "
        "rotation does no network here (the machine answers *wait*), so the 1% row measures "
        f"the engine's per-rotation cost. Figures are medians of {runs} ticks; each tick "
        "loads the inventory afresh, as a cron process does. The `rotate run` row adds "
        "interpreter start-up and imports; it sets `ROTATOR_NO_DELAY=1`, since the random "
        "start-up delay `rotate run` takes under cron (to spread hosts) is waiting, not work.",
    )
    section.raw = raw
    return section
