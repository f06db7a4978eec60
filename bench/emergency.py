"""Run emergencies over many Resend secrets against the in-process sandbox with latency.

Run as a child (`python -m bench.emergency N --json FILE`) so its peak RSS is its own.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.common import (
    Row,
    Section,
    fmt_s,
    resend_inventory,
    rotator_home,
    run_module_child,
    secret_name,
    verdict,
)

RESEND_LIMITS = {"rate": 2.0, "concurrency": 2.0}
"""Resend's documented default (2 req/s, PROVIDERS.md §1), as the example inventory sets."""
CLOUDFLARE_LIMITS = {"rate": 4.0, "concurrency": 4.0}
"""`rotator.runtime.DEFAULT_LIMITS["cloudflare"]`: one budget for Workers and Pages."""
LIMITS = {"resend": RESEND_LIMITS, "cloudflare": CLOUDFLARE_LIMITS}
GOAL_FACTOR = 1.3
WORKERS = 16


def _index_resend_tokens(world: Any) -> None:
    """Look Resend tokens up by index: the sandbox scans every key per lookup.

    The sandbox re-evaluates health after every request, looking each deployed value up
    among all keys; with hundreds of keys that linear scan (under the world's lock) would
    be what the bench measures. The index only changes the sandbox's speed, not answers.
    """
    account = world.resend
    index: dict[str, Any] = {}

    def by_token(token: str) -> Any:
        key = index.get(token)
        if key is not None and account.keys.get(key.id) is key:
            return key
        index.clear()
        index.update({k.token: k for k in account.keys.values()})
        return index.get(token)

    account.by_token = by_token


def _families(requests: dict[str, int]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for key, n in requests.items():
        path = key.split(" ", 1)[-1]
        counts[path.strip("/").split("/")[0] or "?"] += n
    return counts


def _no_wait(seconds: float) -> None:
    """Skip the client's waits: Pages redeploy polls (the sandbox moves one stage per poll)."""


def _engine(inv: Any, *, real_waits: bool = False) -> Any:
    """Build an engine whose rate limiters wait for real and whose other waits are skipped.

    The limiters take the runtime's sleep when the HTTP client is built; the client's own
    sleep (Pages redeploy polls, retry back-off) is then swapped for `_no_wait`, so the
    figures are provider latency, the per-provider limits and the tool's own work.
    """
    from rotator.engine import Engine
    from rotator.runtime import Runtime

    engine = Engine(Runtime(inventory=inv))
    if not real_waits:
        engine.rt.http.sleep = _no_wait
    return engine


def measure(n: int, serial: int, faults: str, real_waits: int = 0) -> dict[str, Any]:
    """Run `serial` emergencies one after another and, if available, `n` concurrently.

    The runtime's sleep is skipped (see `_no_wait`); `real_waits` more emergencies run with
    the real sleep, to show what the Pages redeploy polling costs one emergency.
    """
    import httpx

    from rotator import commands
    from rotator import inventory as inv_mod
    from rotator.engine import Engine
    from rotator.runtime import Runtime
    from rotator.sandbox import Sandbox
    from rotator.sandbox.inventory import CLOUDFLARE_TOKEN_ENV
    from rotator.secret import Secret

    result: dict[str, Any] = {"n": n, "serial_n": serial, "faults": faults}
    total = n + serial + real_waits
    with rotator_home("emergency") as (_tmp, env), Sandbox(faults="none", seed=1) as box:
        _index_resend_tokens(box.world)
        seeded = box.seed_bandofbakers()
        manager = seeded["BANDOFBAKERS_RESEND_API_KEY"].value
        os.environ[CLOUDFLARE_TOKEN_ENV] = box.cloudflare_token
        inventory = resend_inventory(
            Path(env["ROTATOR_INVENTORY"]),
            total,
            base_url=box.base_url,
            account_id=box.account_id,
            limits={"resend": RESEND_LIMITS},
        )
        started = time.perf_counter()
        with httpx.Client(timeout=30.0) as client:

            def create(i: int) -> tuple[str, str]:
                r = client.post(
                    f"{box.base_url}/resend/api-keys",
                    json={"name": f"bench-{i}", "permission": "full_access"},
                    headers={"Authorization": f"Bearer {manager}", "User-Agent": "bench"},
                )
                r.raise_for_status()
                return str(r.json()["id"]), str(r.json()["token"])

            with ThreadPoolExecutor(8) as pool:
                keys = list(pool.map(create, range(1, total + 1)))
        inv = inv_mod.load(inventory)
        setup = Engine(Runtime(inventory=inv))
        for i, (ref, token) in enumerate(keys, start=1):
            commands.import_value(setup, setup.unit(secret_name(i), None), Secret(token), ref)
        setup.rt.close()
        result["setup_s"] = time.perf_counter() - started
        box.set_faults(faults)
        result["latency_s"] = box.faults.latency

        if real_waits:
            engine = _engine(inv, real_waits=True)
            started = time.perf_counter()
            for i in range(n + serial + 1, total + 1):
                unit = engine.unit(secret_name(i), None)
                commands.drive(engine, commands.start_emergency(engine, unit, "bench: leak"))
            result["real_wait_s"] = (time.perf_counter() - started) / real_waits
            engine.rt.close()

        # Serial: one emergency after another, as `rotate emergency SECRET` runs them.
        engine = _engine(inv)
        before = box.state()["requests"]
        started = time.perf_counter()
        statuses: Counter[str] = Counter()
        for i in range(n + 1, n + serial + 1):
            unit = engine.unit(secret_name(i), None)
            rid = commands.start_emergency(engine, unit, "bench: mass leak")
            statuses[commands.drive(engine, rid).status] += 1
            engine.checkpoint()
        result["serial_s"] = time.perf_counter() - started
        after = box.state()["requests"]
        delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
        result["serial_statuses"] = dict(statuses)
        result["per_emergency"] = {k: v / max(1, serial) for k, v in delta.items() if v}
        result["serial_family"] = dict(_families(delta))
        result["per_emergency_family"] = {
            k: v / max(1, serial) for k, v in _families(delta).items()
        }
        engine.rt.close()

        many = getattr(commands, "emergency_many", None)
        result["implemented"] = many is not None
        if many is not None:
            engine = _engine(inv)
            wanted = {secret_name(i) for i in range(1, n + 1)}
            units = [
                u
                for u in commands.select_units(engine, every=True, provider=None, environment=None)
                if u.spec.name in wanted
            ]
            progress: list[tuple[float, str]] = []
            before = box.state()["requests"]
            started = time.perf_counter()

            def on_progress(line: object) -> None:
                progress.append((time.perf_counter() - started, str(line)))

            outcomes = many(
                engine, units, "bench: mass leak", workers=WORKERS, on_progress=on_progress
            )
            result["concurrent_s"] = time.perf_counter() - started
            after = box.state()["requests"]
            delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
            result["concurrent_units"] = len(units)
            result["concurrent_family"] = dict(_families(delta))
            result["concurrent_requests"] = {k: v for k, v in delta.items() if v}
            result["concurrent_statuses"] = dict(
                Counter(getattr(o, "status", "?") for o in (outcomes or []))
            )
            result["progress_lines"] = len(progress)
            result["progress"] = [(round(t, 2), line) for t, line in progress]
            engine.rt.close()
    return result


def bound(result: dict[str, Any]) -> dict[str, float]:
    """Return the wall time the per-provider limits impose on `n` emergencies.

    Requests per provider are those the sandbox counted during the concurrent run (a
    batched publish sends fewer Cloudflare requests than `n` single emergencies), or the
    serial run's per-emergency counts times `n` when there is no concurrent run. Each
    provider's requests take at least count / rate, and count × latency / concurrency; the
    bound is the largest of these and of one emergency's own time.
    """
    n = result["n"]
    latency = result["latency_s"]
    counts = result.get("concurrent_family") or {
        k: v * n for k, v in result["per_emergency_family"].items()
    }
    out: dict[str, float] = {}
    for name, lim in LIMITS.items():
        count = counts.get(name, 0)
        out[f"{name}_requests"] = count
        out[f"{name}_rate"] = count / lim["rate"]
        out[f"{name}_concurrency"] = count * latency / lim["concurrency"]
    out["one_emergency"] = result["serial_s"] / max(1, result["serial_n"])
    terms = [v for k, v in out.items() if not k.endswith("_requests")]
    out["bound"] = max(terms)
    return out


def _phases(progress: list[list[Any]]) -> str:
    """Summarise the progress lines as phases: when each started and how long it took."""
    marks = [(float(t), str(line)) for t, line in progress]
    out = []
    for i, (t, line) in enumerate(marks):
        nxt = marks[i + 1][0] if i + 1 < len(marks) else None
        took = f" ({fmt_s(nxt - t)} to the next line)" if nxt is not None else ""
        out.append(f"{fmt_s(t)}: {line}{took}")
    return "; ".join(out)


def run(
    *, n: int = 500, serial: int = 10, faults: str = "latency-100ms", real_waits: int = 1
) -> Section:
    """Measure the mass emergency in a child process; report times, bound and memory."""
    section = Section("3. Mass emergency")
    with rotator_home("emergency-parent") as (tmp, _env):
        out = tmp / "emergency.json"
        child = run_module_child(
            "bench.emergency",
            [
                str(n),
                "--serial",
                str(serial),
                "--faults",
                faults,
                "--real-waits",
                str(real_waits),
                "--json",
                str(out),
            ],
        )
        if child.code != 0 or not out.exists():
            section.rows.append(Row("mass emergency", "bench failed", verdict="FAIL"))
            section.notes.append(
                "The child failed:\n\n    " + child.stderr[-2000:].replace("\n", "\n    ")
            )
            return section
        result = json.loads(out.read_text())
    b = bound(result)
    per = result["per_emergency_family"]
    serial_s = result["serial_s"]
    one = b["one_emergency"]
    extrapolated = one * n
    goal = GOAL_FACTOR * b["bound"]
    section.rows += [
        Row(
            f"serial: {serial} emergencies one after another (measured)",
            f"{fmt_s(serial_s)} ({fmt_s(one)} each; {dict(result['serial_statuses'])})",
        ),
        Row(
            f"serial time for {n} (extrapolated from the {serial} measured)",
            fmt_s(extrapolated),
            peer="serial is the peer of the concurrent figure",
        ),
        Row(
            "requests per emergency at the sandbox",
            ", ".join(f"{k} {v:.1f}" for k, v in sorted(per.items())),
            peer="counted by `Sandbox.state()`",
        ),
        Row(
            f"requests of the {n} at the sandbox"
            + (" (concurrent run, counted)" if result.get("concurrent_family") else " (×n)"),
            ", ".join(
                f"{k} {v:,.0f}"
                for k, v in sorted(
                    (result.get("concurrent_family") or {k: v * n for k, v in per.items()}).items()
                )
            ),
            peer="counted by `Sandbox.state()`; `env` is the health checks, not limited",
        ),
        Row(
            f"bound imposed by the limits for {n} (Resend {RESEND_LIMITS['rate']:g}/s, "
            f"concurrency {RESEND_LIMITS['concurrency']:g}; Cloudflare "
            f"{CLOUDFLARE_LIMITS['rate']:g}/s, concurrency {CLOUDFLARE_LIMITS['concurrency']:g}, "
            "shared by Workers and Pages)",
            fmt_s(b["bound"]),
            peer=f"Resend {b['resend_requests']:,.0f} requests: rate {fmt_s(b['resend_rate'])}, "
            f"concurrency {fmt_s(b['resend_concurrency'])}; Cloudflare "
            f"{b['cloudflare_requests']:,.0f} requests: rate {fmt_s(b['cloudflare_rate'])}, "
            f"concurrency {fmt_s(b['cloudflare_concurrency'])}; one emergency {fmt_s(one)}",
        ),
    ]
    if result["implemented"]:
        conc = result["concurrent_s"]
        section.rows.append(
            Row(
                f"concurrent: `emergency_many` over {n} ({WORKERS} workers)",
                f"{fmt_s(conc)} ({conc / b['bound']:.2f} × bound, "
                f"{extrapolated / conc:.1f}× faster than serial)",
                f"≤ {GOAL_FACTOR} × bound = {fmt_s(goal)}",
                f"serial ≈ {fmt_s(extrapolated)}",
                verdict(conc <= goal),
            ),
        )
        section.notes.append(
            f"`emergency_many` over {result['concurrent_units']} units: outcomes "
            f"{result['concurrent_statuses']}; requests {result['concurrent_requests']}. "
            f"Progress lines ({result['progress_lines']}): {_phases(result['progress'])}."
        )
    else:
        section.rows.append(
            Row(
                f"concurrent: `emergency_many` over {n}",
                "not implemented",
                f"≤ {GOAL_FACTOR} × bound = {fmt_s(goal)}",
                f"serial ≈ {fmt_s(extrapolated)}",
                "not implemented",
            ),
        )
    if "real_wait_s" in result:
        section.rows.append(
            Row(
                "one emergency with the Pages redeploy polling really waited (measured)",
                fmt_s(result["real_wait_s"]),
                peer="the sandbox deploys one stage per poll; the target polls at 2 s, doubling",
            ),
        )
    section.rows.append(
        Row(
            "peak RSS of the mass-emergency process",
            f"{child.max_rss_mib:.0f} MiB",
            peer="`VmHWM` of the child; includes the in-process sandbox",
        ),
    )
    section.notes += [
        f"{n + serial} shared Resend secrets, each with its own key created through the "
        "sandbox's Resend API and imported; the sandbox runs in the same process with the "
        f"`{faults}` profile ({result['latency_s'] * 1000:.0f} ms per provider request) and "
        "the inventory sets `[limits.resend] rate = 2, concurrency = 2` (Resend's documented "
        "default); Cloudflare keeps the runtime's default (4/s, concurrency 4, one budget "
        "for Workers and Pages). The rate limiters wait for real; the HTTP client's own "
        "sleep is skipped, so the Pages target's redeploy polls (2 s, doubling; the sandbox "
        "moves a deployment one stage per poll) and retry back-offs do not wait: the "
        "figures are provider latency, limits and the tool's own work. A single emergency "
        "redeploys Pages twice (staging, production); with the waits, one emergency takes "
        "the 'really waited' row, which is why `emergency_many` publishes each step as one "
        "batch (one redeploy per environment and step). Setup (keys and imports) took "
        f"{fmt_s(result['setup_s'])} and is not counted.",
        "The bound is the largest of: each limited provider's requests (as counted) at its "
        "rate limit; the same requests' latency spread over its concurrency limit; one "
        "emergency's own time. It assumes Resend and Cloudflare work overlap perfectly; "
        "an emergency's steps alternate between them (generate: Resend; stage: Cloudflare "
        "then validate on Resend; promote: Cloudflare; revoke and verify: Resend).",
        "The sandbox looks each deployed value up among all Resend keys by a linear scan "
        "after every request, under its global lock (rotator/sandbox/resend.py "
        "`ResendAccount.by_token`, called from `World.record_health`); the bench swaps in "
        "an index so the sandbox is not what is measured.",
    ]
    section.raw = {**result, "bound": b, "max_rss_mib": child.max_rss_mib}
    return section


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.emergency")
    parser.add_argument("n", type=int)
    parser.add_argument("--serial", type=int, default=10)
    parser.add_argument("--faults", default="latency-100ms")
    parser.add_argument("--real-waits", type=int, default=0)
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args(argv)
    result = measure(args.n, args.serial, args.faults, args.real_waits)
    args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
