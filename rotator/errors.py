"""The exceptions of rotator, one root, each leaf mapped to one exit code.

    RotatorError                        exit 1   something failed
    ├── BadInputError                   exit 2   bad command-line input (unknown name, bad value)
    │   ├── InventoryError              exit 3   the inventory is invalid (all problems listed)
    │   ├── UnknownNameError            exit 2   a secret or environment not in the inventory
    │   └── OutputFileError             exit 2   a file named on the command line cannot be written
    ├── RefusedError                    exit 4   the command is not allowed now (gate, order)
    ├── KeyMaterialError                exit 5   a key of the tool missing, wrong or unsafe
    │   └── UnsafePathError             exit 5   state directory, key file or written file unsafe
    ├── StoreError                      exit 6   database unreachable, locked, read-only
    │   ├── SchemaOutOfDateError        exit 6   the schema needs `rotate db upgrade`
    │   └── StateFileError              exit 6   a file in the state directory cannot be written
    ├── ProviderError                   exit 7   a provider call failed
    │   ├── RetryLaterError                      transient (429, 5xx, timeout): retried later
    │   ├── NeedsPersonError                     a person must act (instruction attached)
    │   ├── ProviderRefusedError                 the provider refused (invalid key, bad request)
    │   └── NotSupportedError                    the provider cannot do this operation
    ├── TargetError                     exit 8   publishing a value to an environment failed
    │   ├── TargetConfigError                    the target is misconfigured (missing script)
    │   └── StillServedError                     a credential to revoke is still served
    ├── HealthCheckError                exit 8   an environment's health check failed
    ├── RollbackIncompleteError         exit 8   restored, but an environment still fails
    ├── AuditError                      exit 9   the audit trail cannot be written or is invalid
    │   └── AuditWriteError                      an event could not be written: action not taken
    └── ClaimedElsewhereError           exit 10  another runner holds the rotation or the run lock

Messages are for people: what went wrong, which secret or key, what to do next. No
message ever contains a secret value; providers name provider, operation and HTTP status.
"""

from __future__ import annotations

from datetime import datetime


class RotatorError(Exception):
    """Root of every error rotator raises on purpose."""

    exit_code = 1


class BadInputError(RotatorError):
    exit_code = 2


class UnknownNameError(BadInputError):
    exit_code = 2


class InventoryError(BadInputError):
    """The inventory is invalid; `problems` holds every problem found, not just the first."""

    exit_code = 3

    def __init__(self, problems: list[str], path: str | None = None) -> None:
        self.problems = problems
        self.path = path
        where = f" in {path}" if path else ""
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"the inventory{where} has {len(problems)} problem(s):\n{lines}")


class RefusedError(RotatorError):
    """A command that is not allowed now; says why and, when known, from when it is."""

    exit_code = 4

    def __init__(self, reason: str, allowed_from: datetime | None = None) -> None:
        self.reason = reason
        self.allowed_from = allowed_from
        when = f" (allowed from {allowed_from.isoformat()})" if allowed_from else ""
        super().__init__(f"refused: {reason}{when}")


class KeyMaterialError(RotatorError):
    exit_code = 5


class UnsafePathError(KeyMaterialError):
    """The state directory, a key file or a file to write is another user's, shared or a link."""

    exit_code = 5


class OutputFileError(BadInputError):
    """A file a person named (`--out`, an export, `--workdir`) cannot be written."""

    exit_code = 2


class StoreError(RotatorError):
    exit_code = 6


class SchemaOutOfDateError(StoreError):
    exit_code = 6


class StateFileError(StoreError):
    """A file in the state directory cannot be written (read-only, full disk)."""

    exit_code = 6


class ProviderError(RotatorError):
    """A provider operation failed; the message names provider, operation and HTTP status."""

    exit_code = 7

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        operation: str = "",
        status: int | None = None,
    ) -> None:
        self.provider = provider
        self.operation = operation
        self.status = status
        parts = [p for p in (provider, operation) if p]
        prefix = " ".join(parts)
        if status is not None:
            prefix = f"{prefix} (HTTP {status})" if prefix else f"HTTP {status}"
        super().__init__(f"{prefix}: {message}" if prefix else message)


class RetryLaterError(ProviderError):
    """Transient: the same call may succeed later (429, 5xx, timeout, propagation)."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: object) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kw)  # type: ignore[arg-type]


class NeedsPersonError(ProviderError):
    """A person must act; `instruction` says exactly what and which command to run after."""

    def __init__(self, instruction: str, **kw: object) -> None:
        self.instruction = instruction
        super().__init__(instruction, **kw)  # type: ignore[arg-type]


class ProviderRefusedError(ProviderError):
    """The provider refused the request (invalid key, bad request); retrying will not help."""


class NotSupportedError(ProviderError):
    """The provider cannot do this operation at all."""


class TargetError(RotatorError):
    exit_code = 8


class TargetConfigError(TargetError):
    exit_code = 8


class RollbackIncompleteError(RotatorError):
    """The previous value is back but an environment still fails: a person must look."""

    exit_code = 8


class StillServedError(TargetError):
    """A credential about to be revoked is still served by a target: it is not revoked."""


class HealthCheckError(RotatorError):
    exit_code = 8


class AuditError(RotatorError):
    exit_code = 9


class AuditWriteError(AuditError):
    exit_code = 9


class ClaimedElsewhereError(RotatorError):
    exit_code = 10
