"""Measure audit appends (SQLite, PostgreSQL) and offline verification of large exports."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

from bench.common import Row, Section, fmt_s, rotator_home, run_module_child, verdict

APPEND_GOAL = 2_000
VERIFY_GOAL = 200_000
PG_ADMIN = os.environ.get("ROTATOR_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def appends_per_second(
    url: str,
    events: int,
    per_transaction: int,
    *,
    synchronous: str | None = None,
    mac: bool = True,
) -> float:
    """Append `events` events, `per_transaction` in each write transaction; return events/s.

    `per_transaction=0` runs the same number of empty `Store.write()` transactions: the
    floor of one event per transaction. `synchronous` sets SQLite's `PRAGMA synchronous`
    on every connection, for comparison only: the product keeps SQLite's default (FULL).
    `mac` seals every entry with an audit MAC key, as the tool does (issue 14).
    """
    import secrets

    from sqlalchemy import event

    from rotator.store.db import open_store

    store = open_store(url, auto_upgrade=True)
    if synchronous is not None:

        @event.listens_for(store.engine, "connect")
        def _synchronous(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.execute(f"PRAGMA synchronous={synchronous}")

        store.engine.dispose()
    if per_transaction == 0:
        started = time.perf_counter()
        for _ in range(events):
            with store.write():
                pass
        rate = events / (time.perf_counter() - started)
        store.dispose()
        return rate
    # A key of our own: the bench's state directory holds no key files to take one from.
    mac_key = secrets.token_bytes(32) if mac else None
    try:
        transactions = max(1, events // per_transaction)
        started = time.perf_counter()
        _append_in_transactions(store, [per_transaction] * transactions, mac_key)
        return transactions * per_transaction / (time.perf_counter() - started)
    finally:
        store.dispose()


def engine_transaction_sizes() -> list[int]:
    """Return how many audit events each write transaction of the demo's year held.

    The demo drives the real engine (a year of daily runs and one emergency against the
    sandbox), so these are the sizes the tool writes: a step's intent in one transaction,
    its calls and result in the next, a notification or health check with its call.
    """
    import contextlib
    import io
    from collections import Counter

    import audit.trail as trail
    from rotator.demo import run_demo

    sizes: Counter[int] = Counter()
    original = trail.append

    def counting(session: Any, **kw: Any) -> Any:
        sizes[id(session.get_transaction())] += 1
        return original(session, **kw)

    trail.append = counting  # type: ignore[assignment]
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            run_demo(echo=lambda _line: None)
    finally:
        trail.append = original  # type: ignore[assignment]
    return list(sizes.values())


def _append_in_transactions(store: Any, sizes: list[int], mac_key: bytes | None) -> None:
    """Append `sizes[t]` events in write transaction `t`, each sealed with `mac_key`."""
    from audit.trail import append

    for t, size in enumerate(sizes):
        with store.write() as s:
            for i in range(size):
                append(
                    s,
                    event_type="step.done",
                    actor="bench@bench",
                    secret="BANDOFBAKERS_RESEND_API_KEY",
                    environment="shared",
                    rotation_id=f"r{t:08d}",
                    details={"step": "stage", "n": i},
                    host="bench-host",
                    tool_version="0.0.0",
                    mac_key=mac_key,
                )


def appends_as_grouped(url: str, sizes: list[int]) -> float:
    """Append events in transactions of the given sizes, in order; return events/s."""
    import secrets

    from rotator.store.db import open_store

    store = open_store(url, auto_upgrade=True)
    mac_key = secrets.token_bytes(32)
    try:
        started = time.perf_counter()
        _append_in_transactions(store, sizes, mac_key)
        return sum(sizes) / (time.perf_counter() - started)
    finally:
        store.dispose()


def _postgres_database() -> tuple[str | None, str]:
    """Create a uniquely named database; return (url or None, reason when unreachable)."""
    try:
        import psycopg

        name = f"rotator_bench_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except Exception as exc:
        return None, f"{type(exc).__name__}: {exc}".splitlines()[0]
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name, name


def _drop(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _export(path: Path, count: int, key: Any) -> None:
    from audit.synthetic import write_synthetic_export

    with path.open("wb") as out:
        write_synthetic_export(out, count, key)


def run(*, events: int = 5_000, verify_sizes: tuple[int, ...] = (100_000, 1_000_000)) -> Section:
    section = Section("4. Audit trail, and 5. memory of verification")
    raw: dict[str, Any] = {}
    with rotator_home("audit") as (tmp, _env):
        for per in (1, 100):
            url = f"sqlite:///{tmp / f'append{per}.db'}"
            rate = appends_per_second(url, events, per)
            raw[f"sqlite_{per}"] = rate
            section.rows.append(
                Row(
                    f"appends, SQLite, {per} event(s) per transaction",
                    f"{rate:,.0f} events/s",
                    "-",
                    "fsync-bound: one commit per event" if per == 1 else "-",
                    "info",
                ),
            )
        sizes = engine_transaction_sizes()
        grouped = appends_as_grouped(f"sqlite:///{tmp / 'grouped.db'}", sizes * 3)
        raw["sqlite_engine_grouped"] = {"rate": grouped, "sizes": sizes}
        section.rows.append(
            Row(
                "appends, SQLite, grouped as the engine writes them (the demo's year: "
                f"{sum(sizes):,} events in {len(sizes):,} transactions, "
                f"{sum(sizes) / len(sizes):.1f} per transaction; replayed 3×)",
                f"{grouped:,.0f} events/s",
                f"≥ {APPEND_GOAL:,}/s",
                "1 and 100 per transaction above",
                verdict(grouped >= APPEND_GOAL),
            ),
        )
        empty = appends_per_second(f"sqlite:///{tmp / 'empty.db'}", events, 0)
        raw["sqlite_empty_transactions"] = empty
        section.rows.append(
            Row(
                "empty `Store.write()` transactions, SQLite (set-up, BEGIN IMMEDIATE, COMMIT; "
                "nothing written, so no fsync)",
                f"{empty:,.0f} transactions/s",
            )
        )
        for per, what in ((1, None), (0, "empty `Store.write()` transactions")):
            url = f"sqlite:///{tmp / f'normal{per}.db'}"
            rate = appends_per_second(url, events, per, synchronous="NORMAL")
            raw[f"sqlite_normal_{per}"] = rate
            section.rows.append(
                Row(
                    (what or "appends, SQLite, 1 event per transaction")
                    + ", `PRAGMA synchronous=NORMAL` (not the product's setting)",
                    f"{rate:,.0f} {'transactions' if per == 0 else 'events'}/s",
                    f"(≥ {APPEND_GOAL:,}/s)" if per else "-",
                    "FULL above",
                    "info",
                ),
            )
        pg_url, name = _postgres_database()
        if pg_url is None:
            section.rows.append(
                Row(
                    "appends, PostgreSQL", "skipped", verdict="skipped", peer=f"unreachable: {name}"
                )
            )
        else:
            try:
                for per in (1, 100):
                    rate = appends_per_second(pg_url, events, per)
                    raw[f"postgres_{per}"] = rate
                    section.rows.append(
                        Row(
                            f"appends, PostgreSQL, {per} event(s) per transaction",
                            f"{rate:,.0f} events/s",
                            peer="SQLite above",
                        ),
                    )
            finally:
                _drop(name)

        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        key = Ed25519PrivateKey.generate()
        pem = tmp / "audit-public.pem"
        pem.write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        floor = run_module_child("audit.verify", ["--help"], pin_cpu=0)
        raw["verify_floor_rss"] = floor.max_rss_mib
        for size in verify_sizes:
            export = tmp / f"export-{size}.jsonl"
            started = time.perf_counter()
            _export(export, size, key)
            written = time.perf_counter() - started
            child = run_module_child(
                "audit.verify", [str(export), "--public-key", str(pem)], pin_cpu=0
            )
            rate = size / child.seconds
            ok = child.code == 0
            raw[f"verify_{size}"] = {
                "seconds": child.seconds,
                "rate": rate,
                "rss": child.max_rss_mib,
                "written_s": written,
                "bytes": export.stat().st_size,
                "code": child.code,
                "out": child.stdout[-300:],
            }
            biggest = size == max(verify_sizes)
            section.rows.append(
                Row(
                    f"verify a {size:,}-event export (`python -m audit.verify`, one core)",
                    f"{rate:,.0f} events/s ({fmt_s(child.seconds)}, "
                    f"{export.stat().st_size / 2**20:.0f} MiB){'' if ok else ' INVALID'}",
                    f"≥ {VERIFY_GOAL:,}/s" if biggest else "-",
                    "-",
                    verdict(ok and rate >= VERIFY_GOAL) if biggest else "info",
                ),
            )
            export.unlink()
        rss = {size: raw[f"verify_{size}"]["rss"] for size in verify_sizes}
        for size in verify_sizes:
            section.rows.append(
                Row(
                    f"peak RSS verifying {size:,} events",
                    f"{rss[size]:.0f} MiB",
                    "flat in the trail's size",
                    f"`python -m audit.verify --help` {floor.max_rss_mib:.0f} MiB",
                ),
            )
        small, large = min(verify_sizes), max(verify_sizes)
        grew = rss[large] - rss[small]
        section.rows.append(
            Row(
                f"RSS growth {small:,} → {large:,} events",
                f"{grew:+.1f} MiB",
                "≈ 0 (< 5 MiB)",
                verdict=verdict(grew < 5.0),
            ),
        )
    section.notes += [
        f"Appends: `audit.trail.append` in `Store.write()` transactions (`BEGIN IMMEDIATE` on "
        f"SQLite), {events:,} events each way, one event per transaction as the engine writes "
        "them, and 100 per transaction. PostgreSQL: a fresh database on 127.0.0.1:5432, "
        "dropped after; each append takes the trail's advisory lock (once per transaction: "
        "later appends of the same transaction use the head cached in `session.info`). "
        "SQLite runs in WAL mode with SQLite's default `synchronous=FULL`, so every commit "
        "that wrote something waits for an fsync of the WAL; an empty transaction writes "
        "nothing, so its row is the cost of `Store.write()` itself, not of the fsync. The "
        "`synchronous=NORMAL` rows are set by the bench only, to show what that setting "
        "would give (in WAL mode it is safe against corruption but may lose the last "
        "committed transactions on power loss; the action and its audit event are lost "
        "together); the product does not use it.",
        "Verification: an export written by `audit.synthetic.write_synthetic_export` "
        "(checkpoint every 10,000 entries), verified by `python -m audit.verify` in a child "
        "process pinned to one CPU (`sched_setaffinity`); the time includes interpreter "
        "start-up. Peak RSS is the child's own high-water mark (`VmHWM` at exit: `ru_maxrss` "
        "would count the bench process the child was forked from).",
    ]
    section.raw = raw
    return section
