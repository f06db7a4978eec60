"""State the target plugin contract and find the installed targets.

A target puts values into one environment: a Cloudflare Workers script, a Cloudflare
Pages project, a dotenv file. The engine builds one target per entry of
`environments.<env>.targets` in the inventory and, in one run, calls

* `publish(values)` one or more times, each with the variables that changed
  (variable name → `Secret`); publishing the same values again must be safe, because a
  run that crashed after a publish repeats it;
* `finish()` once, after the last publish of that environment in the run: the moment
  for work that must happen once however many values changed (a Pages redeploy).

Both raise `TargetConfigError` when the inventory or a credential is wrong (a person must
fix it; retrying will not help), `TargetError` when the target did not take the value,
and let `RetryLaterError` through when the target is only busy (429, the Cloudflare
5-minute block, a deployment still in progress): the engine retries the step later.

Targets register through the entry-point group `rotator.targets`, built-ins exactly like
third-party plugins.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any, ClassVar

from rotator.errors import TargetConfigError, TargetError, UnknownNameError
from rotator.plugins import TARGET_GROUP
from rotator.secret import Secret

if TYPE_CHECKING:
    # Types only: inventory validation loads the target classes on every command, and
    # `rotate status` must not pay for importing httpx.
    from providers.base import CredentialSource
    from providers.http import HttpClient


class Target(ABC):
    """Publish secret values to one environment through one mechanism."""

    kind: ClassVar[str]
    # Option name → what it is, shown when the option is missing.
    required_options: ClassVar[Mapping[str, str]] = {}
    optional_options: ClassVar[Mapping[str, str]] = {}

    def __init__(
        self,
        options: Mapping[str, Any],
        environment: str,
        http: HttpClient | None,
        credentials: CredentialSource | None,
        urls: Mapping[str, str],
    ) -> None:
        problems = self.validate_options(options)
        if problems:
            raise TargetConfigError(
                f"{self.kind} target of environment {environment!r} is misconfigured "
                f"(environments.{environment}.targets in the inventory): " + "; ".join(problems)
            )
        self.options: Mapping[str, Any] = dict(options)
        self.environment = environment
        self._http = http
        self._credentials = credentials
        self.urls: Mapping[str, str] = dict(urls)

    @classmethod
    def validate_options(cls, options: Mapping[str, Any]) -> list[str]:
        """Return every problem with `options`, each as `<option>: <what is wrong>`."""
        problems: list[str] = []
        for name, meaning in cls.required_options.items():
            value = options.get(name)
            if value is None:
                problems.append(f"{name}: missing; {meaning}")
            elif not isinstance(value, str) or not value.strip():
                problems.append(f"{name}: must be a non-empty string ({meaning})")
        known = {*cls.required_options, *cls.optional_options, "kind"}
        for name in sorted(set(options) - known):
            expected = ", ".join(sorted(known - {"kind"}))
            problems.append(f"{name}: unknown option for {cls.kind}; expected {expected}")
        problems.extend(cls.check_values(options))
        return problems

    @classmethod
    def check_values(cls, options: Mapping[str, Any]) -> Iterable[str]:
        """Return problems with the values of known options; a hook for subclasses."""
        return ()

    @property
    def http(self) -> HttpClient:
        """Return the HTTP client, which network targets cannot work without."""
        if self._http is None:
            raise TargetConfigError(f"{self.describe()} needs an HTTP client and got none")
        return self._http

    @property
    def credentials(self) -> CredentialSource:
        """Return the tool's credential source, which network targets cannot work without."""
        if self._credentials is None:
            raise TargetConfigError(f"{self.describe()} needs the tool's credentials and got none")
        return self._credentials

    @abstractmethod
    def publish(self, values: Mapping[str, Secret]) -> None:
        """Set each variable to its value in this environment; safe to repeat."""

    def finish(self) -> None:
        """Do what must happen once per environment and run after every publish."""
        return None

    def report(self) -> list[str]:
        """Return, for the step's output and audit event, what was done beyond the values.

        Lines such as which Pages deployment was rebuilt and why, or which variables were
        left alone because the target does not hold them. Never a value.
        """
        return []

    @abstractmethod
    def describe(self) -> str:
        """Name this target for people, e.g. `cloudflare-workers bandofbakers-staging`."""


def load_targets(
    found: Iterable[EntryPoint] | None = None,
) -> dict[str, type[Target]]:
    """Load every target plugin of the `rotator.targets` group, refusing duplicate names."""
    eps = list(entry_points(group=TARGET_GROUP) if found is None else found)
    targets: dict[str, type[Target]] = {}
    origin: dict[str, str] = {}
    for ep in eps:
        if ep.name in targets:
            raise TargetError(
                f"two target plugins are named {ep.name!r} ({origin[ep.name]} and {ep.value}); "
                "uninstall one of them"
            )
        try:
            loaded = ep.load()
        except Exception as exc:
            raise TargetError(
                f"target plugin {ep.name!r} ({ep.value}) failed to load: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if not (isinstance(loaded, type) and issubclass(loaded, Target)):
            raise TargetError(f"target plugin {ep.name!r} ({ep.value}) is not a Target class")
        if getattr(loaded, "kind", None) != ep.name:
            raise TargetError(
                f"target plugin {ep.name!r} ({ep.value}) declares kind "
                f"{getattr(loaded, 'kind', None)!r}; the entry-point name and kind must match"
            )
        targets[ep.name] = loaded
        origin[ep.name] = ep.value
    return targets


@cache
def _installed_targets() -> dict[str, type[Target]]:
    return load_targets()


def get_target(kind: str) -> type[Target]:
    """Return the target class registered as `kind` (plugins are loaded once per process)."""
    targets = _installed_targets()
    try:
        return targets[kind]
    except KeyError:
        known = ", ".join(sorted(targets)) or "none"
        raise UnknownNameError(f"unknown target kind {kind!r}; installed: {known}") from None
