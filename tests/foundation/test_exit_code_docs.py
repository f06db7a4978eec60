"""Every `RotatorError` subclass maps to exactly one documented exit code."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import audit
import providers
import rotator
from rotator.errors import RotatorError

DOC = Path(__file__).resolve().parents[2] / "docs" / "exit-codes.md"


def _import_everything() -> None:
    for package in (rotator, providers, audit):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if ".sandbox" in info.name or info.name.endswith("__main__"):
                continue
            importlib.import_module(info.name)


def _subclasses(cls: type) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub, *_subclasses(sub)}
    return found


def _documented() -> dict[str, list[int]]:
    rows: dict[str, list[int]] = {}
    table = DOC.read_text().split("| code | meaning | raised as | what to do |", 1)[1]
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 4 or not cells[0].isdigit():
            if rows and not line.startswith("|"):
                break
            continue
        for name in re.findall(r"`([A-Z][A-Za-z]+(?:Error|Interrupt))`", cells[2]):
            rows.setdefault(name, []).append(int(cells[0]))
    return rows


def test_every_rotator_error_is_documented_once_with_its_code() -> None:
    _import_everything()
    documented = _documented()
    classes = {RotatorError, *_subclasses(RotatorError)}
    problems = []
    for cls in sorted(classes, key=lambda c: c.__name__):
        if cls.__module__.startswith("tests"):
            continue
        codes = documented.get(cls.__name__, [])
        if len(codes) != 1:
            problems.append(f"{cls.__name__}: documented under codes {codes}, expected one")
        elif codes[0] != cls.exit_code:
            problems.append(f"{cls.__name__}: exit_code {cls.exit_code}, documented {codes[0]}")
    assert not problems, "\n".join(problems)
