"""Describe the machine and render the sections as docs/performance.md."""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime
from pathlib import Path

from bench.common import Section

RECOMMENDATIONS = Path(__file__).with_name("recommendations.md")


def machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram = f"{int(line.split()[1]) / 2**20:.1f} GiB"
                break
    except OSError:
        pass
    return {
        "CPU": cpu,
        "cores": str(os.cpu_count()),
        "RAM": ram,
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "OS": f"{platform.system()} {platform.release()}",
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load average at the end (1, 5, 15 min)": ", ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(sections: list[Section], info: dict[str, str], *, quick: bool, seconds: float) -> str:
    lines = [
        "# Performance",
        "",
        "Written by `python -m bench` (`make bench`); every figure below comes from one run "
        "of it on the machine described, each next to its goal (issue 8) and to the floor or "
        "peer measured in the same run. Do not edit by hand: run the bench again.",
        "",
    ]
    if quick:
        lines += ["**Quick run (`--quick`): tiny sizes, goals not meaningful.**", ""]
    lines += ["## Machine", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {_cell(v)} |" for k, v in info.items()]
    lines += [f"| bench wall time | {seconds:.0f} s |", ""]
    for section in sections:
        lines += [f"## {section.title}", "", "| measure | figure | goal | floor / peer | result |"]
        lines.append("|---|---|---|---|---|")
        for row in section.rows:
            lines.append(
                f"| {_cell(row.measure)} | {_cell(row.figure)} | {_cell(row.goal)} | "
                f"{_cell(row.peer)} | {row.verdict} |"
            )
        lines.append("")
        for note in section.notes:
            lines += [note, ""]
    if RECOMMENDATIONS.exists():
        lines += [RECOMMENDATIONS.read_text().rstrip(), ""]
    return "\n".join(lines)
