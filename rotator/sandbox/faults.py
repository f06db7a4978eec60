"""Decide, from a seeded RNG, which requests the sandbox answers badly, and how.

A `FaultProfile` holds two kinds of knobs: transport misbehaviour (latency, 503, 429 with
`Retry-After`, dropped connections, Cloudflare's five-minute block) and the providers' own
slowness (long-running operations, eventual expiry, key propagation, a failing Pages
deploy). Both are switched together at runtime through `POST /sandbox/faults`, so an
end-to-end test can turn a scenario on for one step and off again.

Faults only touch the emulated provider APIs: console, control and health endpoints always
answer, since they stand for a person, the test itself, and the application.
"""

from __future__ import annotations

import dataclasses
import math
import random
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

InvalidKeyStyle = Literal["validation_error", "invalid_api_key"]


@dataclass(frozen=True)
class FaultProfile:
    """How the sandbox misbehaves; shares are probabilities per faultable request."""

    name: str = "none"
    latency: float = 0.0
    share_503: float = 0.0
    share_429: float = 0.0
    retry_after: int = 1
    share_dropped: float = 0.0
    cloudflare_block: bool = False
    cloudflare_burst: int = 10
    cloudflare_burst_window: float = 60.0
    cloudflare_block_seconds: int = 300
    lro_polls: int = 1
    lro_seconds: float = 0.0
    pages_deploy_fails: bool = False
    stripe_expiry_delay: float = 0.0
    key_propagation_delay: float = 0.0
    # Seconds a new Resend key, Stripe key or OAuth client secret is refused as unknown.
    credential_propagation_delay: float = 0.0
    resend_invalid_key: InvalidKeyStyle = "validation_error"

    def __post_init__(self) -> None:
        shares = (self.share_503, self.share_429, self.share_dropped)
        if any(not 0.0 <= share <= 1.0 for share in shares) or sum(shares) > 1.0:
            raise ValueError("fault shares must be between 0 and 1 and add up to at most 1")
        if self.resend_invalid_key not in ("validation_error", "invalid_api_key"):
            raise ValueError("resend_invalid_key is 'validation_error' or 'invalid_api_key'")
        if (
            min(
                self.latency,
                self.lro_seconds,
                self.stripe_expiry_delay,
                self.credential_propagation_delay,
            )
            < 0
        ):
            raise ValueError("delays cannot be negative")
        if self.lro_polls < 0 or self.cloudflare_burst < 1 or self.retry_after < 0:
            raise ValueError("counts must be positive")

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


PROFILES: Mapping[str, FaultProfile] = {
    profile.name: profile
    for profile in (
        FaultProfile("none"),
        # Like Pebble: a few percent of answers are 429 or 503, so every run retries.
        FaultProfile("default", share_429=0.015, share_503=0.015, retry_after=1),
        FaultProfile("latency-100ms", latency=0.1),
        FaultProfile("flaky-503", share_503=0.2),
        FaultProfile("rate-limited", share_429=0.3, retry_after=2),
        FaultProfile("dropped", share_dropped=0.1),
        FaultProfile("cloudflare-block", cloudflare_block=True),
        FaultProfile("slow-lro", lro_polls=3, lro_seconds=180.0),
        FaultProfile("pages-deploy-fails", pages_deploy_fails=True),
        FaultProfile("eventual", stripe_expiry_delay=30.0, key_propagation_delay=60.0),
    )
}


def profile_named(name: str) -> FaultProfile:
    try:
        return PROFILES[name]
    except KeyError:
        known = ", ".join(sorted(PROFILES))
        raise ValueError(f"unknown fault profile {name!r}; known profiles: {known}") from None


def profile_from_json(payload: Mapping[str, Any]) -> FaultProfile:
    """Build a profile from `{"profile": name, <field>: value, ...}`: a named one, adjusted."""
    base = profile_named(str(payload.get("profile", "none")))
    fields = {f.name: f for f in dataclasses.fields(FaultProfile)}
    changes: dict[str, Any] = {}
    for key, value in payload.items():
        if key == "profile":
            continue
        if key not in fields or key == "name":
            raise ValueError(f"unknown fault setting {key!r}")
        expected = type(getattr(base, key))
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, expected) or (expected is not bool and isinstance(value, bool)):
            raise ValueError(f"fault setting {key!r} takes a {expected.__name__}")
        changes[key] = value
    return dataclasses.replace(base, **changes)


@dataclass(frozen=True)
class Fault:
    kind: Literal["drop", "429", "503"]
    retry_after: int = 0


class FaultInjector:
    """Draw one number per faultable request from a seeded RNG, in arrival order."""

    def __init__(self, profile: FaultProfile, seed: int | None) -> None:
        # Not for security: the point is that a seed replays the same misbehaviour.
        self._rng = random.Random(seed)  # noqa: S311
        self._lock = threading.Lock()
        self._profile = profile
        self._recent: deque[datetime] = deque()
        self._blocked_until: datetime | None = None
        self._block_spent = False

    @property
    def profile(self) -> FaultProfile:
        return self._profile

    def set_profile(self, profile: FaultProfile) -> None:
        with self._lock:
            self._profile = profile
            self._recent.clear()
            self._blocked_until = None
            self._block_spent = False

    def decide(self, family: str, now: datetime) -> Fault | None:
        with self._lock:
            profile = self._profile
            draw = self._rng.random()
            if family == "cloudflare" and profile.cloudflare_block:
                blocked = self._cloudflare_block(profile, now)
                if blocked is not None:
                    return blocked
            if draw < profile.share_dropped:
                return Fault("drop")
            draw -= profile.share_dropped
            if draw < profile.share_429:
                return Fault("429", profile.retry_after)
            draw -= profile.share_429
            if draw < profile.share_503:
                return Fault("503")
            return None

    def _cloudflare_block(self, profile: FaultProfile, now: datetime) -> Fault | None:
        """Trip the block once per profile: a burst earns 429 for the whole block period."""
        if self._blocked_until is not None and now < self._blocked_until:
            remaining = (self._blocked_until - now).total_seconds()
            return Fault("429", max(1, math.ceil(remaining)))
        if self._block_spent:
            return None
        window = timedelta(seconds=profile.cloudflare_burst_window)
        self._recent.append(now)
        while self._recent and now - self._recent[0] > window:
            self._recent.popleft()
        if len(self._recent) < profile.cloudflare_burst:
            return None
        self._block_spent = True
        self._blocked_until = now + timedelta(seconds=profile.cloudflare_block_seconds)
        return Fault("429", profile.cloudflare_block_seconds)
