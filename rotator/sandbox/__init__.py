"""A local stand-in for every API rotator talks to, for the demo, the tests and dry runs.

See `Sandbox` for the server, `FaultProfile` and `PROFILES` for misbehaviour, and
`inventory_overrides` for the settings that point an inventory at it.
"""

from rotator.sandbox.environments import DEFAULT_ENVIRONMENTS, EnvironmentBinding, HealthRecord
from rotator.sandbox.faults import PROFILES, FaultProfile, profile_named
from rotator.sandbox.overrides import inventory_overrides
from rotator.sandbox.seed import SeededValue
from rotator.sandbox.server import DropConnectionError, RequestHook, Sandbox

__all__ = [
    "DEFAULT_ENVIRONMENTS",
    "PROFILES",
    "DropConnectionError",
    "EnvironmentBinding",
    "FaultProfile",
    "HealthRecord",
    "RequestHook",
    "Sandbox",
    "SeededValue",
    "inventory_overrides",
    "profile_named",
]
