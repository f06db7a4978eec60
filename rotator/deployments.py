"""Record what each target serves, so nothing is revoked while a target still serves it.

Each publish writes twice, like every side effect: before the call the version joins the
target's set (it may be served from now on, whatever happens next), after a confirmed
publish the set becomes exactly that version. A crash, a half-applied publish or a failed
redeploy therefore leaves both versions listed, and both are then kept alive. A target
with no row serves the unit's current value: that is how an imported value is deployed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlmodel import Session

from rotator.store.models import Deployment

TargetsByEnv = Mapping[str, Sequence[str]]
"""Environment → the names (`Target.describe()`) of its targets in the inventory."""


def _row(s: Session, secret_id: int, env: str, target: str) -> Deployment | None:
    return s.get(Deployment, (secret_id, env, target))


def serving(s: Session, secret_id: int, env: str, target: str, current: str | None) -> set[str]:
    """Return the version ids `target` may serve; no row means the current one."""
    row = _row(s, secret_id, env, target)
    if row is None:
        return {current} if current else set()
    return set(json.loads(row.serving))


def mark(
    s: Session,
    secret_id: int,
    targets: TargetsByEnv,
    version_id: str,
    *,
    confirmed: bool,
    current: str | None,
    at: datetime,
) -> None:
    """Before a publish (`confirmed=False`) add `version_id`; after one, make it the only one."""
    for env, names in targets.items():
        for name in names:
            held = {version_id} if confirmed else serving(s, secret_id, env, name, current)
            held.add(version_id)
            row = _row(s, secret_id, env, name)
            if row is None:
                row = Deployment(secret_id=secret_id, environment=env, target=name)
            row.serving = json.dumps(sorted(held))
            row.updated_at = at
            s.add(row)
    s.flush()


def served_by(
    s: Session, secret_id: int, targets: TargetsByEnv, version_id: str, current: str | None
) -> list[str]:
    """Name every `env: target` that may still serve `version_id`."""
    return [
        f"{env}: {name}"
        for env, names in targets.items()
        for name in names
        if version_id in serving(s, secret_id, env, name, current)
    ]


def table(
    s: Session, secret_id: int, targets: TargetsByEnv, current: str | None
) -> dict[str, list[str]]:
    """Return `env: target` → the version ids it may serve, for `status` and `show`."""
    return {
        f"{env}: {name}": sorted(serving(s, secret_id, env, name, current))
        for env, names in targets.items()
        for name in names
    }


def envs_serving(
    s: Session, secret_id: int, targets: TargetsByEnv, version_id: str, current: str | None
) -> list[str]:
    """Return the environments in which some target may still serve `version_id`."""
    return [
        env
        for env, names in targets.items()
        if any(version_id in serving(s, secret_id, env, n, current) for n in names)
    ]


__all__ = ["TargetsByEnv", "envs_serving", "mark", "served_by", "serving", "table"]
