"""Run every benchmark and write docs/performance.md: `python -m bench [--quick]`."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench.common import ROOT, Section
from bench.report import machine, render


def run_all(quick: bool, *, skip: tuple[str, ...] = ()) -> list[Section]:
    from bench import emergency, startup, tick, trail

    sections: list[Section] = []
    plans: dict[str, Callable[[], Section]] = {
        "startup": lambda: startup.run(runs=3 if quick else 15, secrets=10 if quick else 100),
        "tick": lambda: tick.run(
            sizes=(200, 1_000) if quick else (1_000, 10_000, 100_000),
            runs=1 if quick else 3,
            history=1 if quick else 8,
            audit_events=2_000 if quick else 200_000,
            cli_size=1_000 if quick else 10_000,
        ),
        "emergency": lambda: emergency.run(
            n=10 if quick else 500, serial=2 if quick else 10, real_waits=0 if quick else 1
        ),
        "audit": lambda: trail.run(
            events=300 if quick else 5_000,
            verify_sizes=(10_000, 100_000) if quick else (100_000, 1_000_000),
        ),
    }
    for name, plan in plans.items():
        if name in skip:
            continue
        started = time.perf_counter()
        print(f"bench: {name}...", file=sys.stderr, flush=True)
        section = plan()
        section.raw["bench_seconds"] = time.perf_counter() - started
        print(f"bench: {name} done in {section.raw['bench_seconds']:.0f} s", file=sys.stderr)
        sections.append(section)
    return sections


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a quick check")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "performance.md")
    parser.add_argument("--json", type=Path, help="also write the raw figures as JSON")
    parser.add_argument(
        "--skip", action="append", default=[], choices=("startup", "tick", "emergency", "audit")
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    load = os.getloadavg()[0]
    sections = run_all(args.quick, skip=tuple(args.skip))
    info = machine()
    info = {**info, "load average at the start (1 min)": f"{load:.2f}"}
    text = render(sections, info, quick=args.quick, seconds=time.perf_counter() - started)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    if args.json:
        args.json.write_text(json.dumps({s.title: s.raw for s in sections}, indent=2, default=str))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
