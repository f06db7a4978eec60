"""Hold what every benchmark shares: result rows, timing, child processes, inventories."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
PYTHON = str(VENV_BIN / "python") if (VENV_BIN / "python").exists() else sys.executable
ROTATE = str(VENV_BIN / "rotate")


@dataclass
class Row:
    """One measured figure next to its goal and the floor or peer it is compared with."""

    measure: str
    figure: str
    goal: str = "-"
    peer: str = "-"
    verdict: str = "info"  # pass | FAIL | info | not implemented | skipped


@dataclass
class Section:
    """The result of one benchmark: a table, notes on where time goes, raw numbers."""

    title: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)


def verdict(ok: bool) -> str:
    return "pass" if ok else "FAIL"


def median_time(fn: Callable[[], object], runs: int) -> float:
    """Return the median wall time of `runs` calls of `fn`, in seconds."""
    times = []
    for _ in range(max(1, runs)):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


@dataclass
class ChildResult:
    """A finished child process: its exit code, output, wall time and peak RSS."""

    code: int
    stdout: str
    stderr: str
    seconds: float
    max_rss_mib: float


def run_child(
    args: list[str],
    *,
    env: Mapping[str, str] | None = None,
    input_text: str | None = None,
    cwd: Path | None = None,
    pin_cpu: int | None = None,
) -> ChildResult:
    """Run one child to completion; its own peak RSS comes from `wait4`, not the parent's."""
    full_env = {**os.environ, **(env or {})}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(
            args,
            stdin=subprocess.PIPE if input_text is not None else subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=full_env,
            cwd=cwd,
            preexec_fn=(lambda: os.sched_setaffinity(0, {pin_cpu}))
            if pin_cpu is not None
            else None,
        )
        if input_text is not None and proc.stdin is not None:
            proc.stdin.write(input_text.encode())
            proc.stdin.close()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return ChildResult(
            proc.returncode,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
            seconds,
            usage.ru_maxrss / 1024.0,  # KiB; see `run_module_child` for what it counts
        )


_HWM_WRAPPER = """\
import atexit, runpy, sys
out, module = sys.argv[1], sys.argv[2]
def _hwm():
    with open("/proc/self/status") as src, open(out, "w") as dst:
        dst.write(next((l for l in src if l.startswith("VmHWM")), ""))
atexit.register(_hwm)
sys.argv = [module, *sys.argv[3:]]
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


def run_module_child(module: str, args: list[str], *, pin_cpu: int | None = None) -> ChildResult:
    """Run `python -m module args` and take its peak RSS from its own `VmHWM`.

    `ru_maxrss` of a child counts the memory of the process it was forked from (Linux
    keeps the high-water mark across exec), and the bench process grows large; `VmHWM`
    belongs to the new program only.
    """
    with tempfile.NamedTemporaryFile("r", suffix=".hwm") as hwm:
        child = run_child(
            [PYTHON, "-c", _HWM_WRAPPER, hwm.name, module, *args], cwd=ROOT, pin_cpu=pin_cpu
        )
        line = Path(hwm.name).read_text().split()
    child.max_rss_mib = int(line[1]) / 1024.0 if len(line) >= 2 else float("nan")
    return child


@contextmanager
def rotator_home(prefix: str) -> Iterator[tuple[Path, dict[str, str]]]:
    """Make a state directory with fresh keys; yield it and the environment naming it."""
    with tempfile.TemporaryDirectory(prefix=f"rotator-bench-{prefix}-") as tmp:
        home = Path(tmp) / "state"
        env = {
            "ROTATOR_HOME": str(home),
            "ROTATOR_ACTOR": "bench@bench",
            "ROTATOR_INVENTORY": str(Path(tmp) / "inventory.toml"),
        }
        with environment(env):
            from rotator.keys import init_keys

            init_keys()
            yield Path(tmp), env


@contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables inside the block, restoring the old ones after."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def secret_name(i: int) -> str:
    return f"BENCH_RESEND_KEY_{i:06d}"


def resend_inventory(
    path: Path,
    count: int,
    *,
    base_url: str = "http://127.0.0.1:9",
    account_id: str = "0123456789abcdef0123456789abcdef",
    limits: Mapping[str, Mapping[str, float]] | None = None,
    extra: str = "",
) -> Path:
    """Write an inventory of `count` shared Resend secrets, every URL under `base_url`."""
    from rotator.sandbox.overrides import inventory_overrides

    overrides = inventory_overrides(base_url)
    targets = {
        env: (
            "targets = [\n"
            f'  {{ kind = "cloudflare-workers", account_id = "{account_id}", '
            f'script = "bandofbakers-{env}" }},\n'
            f'  {{ kind = "cloudflare-pages", account_id = "{account_id}", '
            f'project = "bandofbakers", deployment = "{dep}"'
            + (', branch = "staging"' if dep == "preview" else "")
            + " },\n"
            "]\n"
        )
        for env, dep in (("staging", "preview"), ("production", "production"))
    }
    head, _, envs = overrides.partition("[environments.staging]")
    staging, _, production = envs.partition("[environments.production]")
    parts = [
        "[settings]",
        'time_zone = "Europe/London"',
        "quarter_start_months = [1, 4, 7, 10]",
        'soak = "24h"',
        'monitoring = "24h"',
        "",
        "[maintenance_window]",
        'days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]',
        'start = "00:00"',
        'end = "23:59"',
        "",
        head.rstrip(),
        "",
        "[environments.staging]" + staging.rstrip(),
        targets["staging"],
        "[environments.production]" + production.rstrip(),
        targets["production"],
        "[credentials]",
        'cloudflare_api_token = { env = "ROTATOR_SANDBOX_CLOUDFLARE_TOKEN" }',
        "",
        "[audit]",
        'origin = "bench.example/rotator"',
        f'external_sink = "{path.parent / "audit-checkpoints.log"}"',
        "",
    ]
    for name, lim in (limits or {}).items():
        parts.append(f"[limits.{name}]")
        parts.extend(f"{k} = {v:g}" for k, v in lim.items())
        parts.append("")
    lines = [
        f'[secrets.{secret_name(i)}]\nprovider = "resend"\nscope = "shared"\n'
        'options = { permission = "full_access" }\n'
        for i in range(1, count + 1)
    ]
    path.write_text("\n".join(parts) + extra + "\n" + "\n".join(lines))
    return path


def fmt_s(seconds: float) -> str:
    if seconds < 0.01:
        return f"{seconds * 1000:.2f} ms"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.2f} s"
