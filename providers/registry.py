"""Load providers from the `rotator.providers` entry-point group, built-ins included.

Built-in providers register exactly like third-party ones (pyproject.toml), so one path
loads them all. Loading refuses two providers with one name and names a plugin that
fails to load: which entry point, from which distribution, and what it raised.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from providers.base import Provider
from rotator.errors import RotatorError, UnknownNameError

GROUP = "rotator.providers"


class PluginError(RotatorError):
    """A provider plugin cannot be used: it failed to load, or its name is taken."""


def _origin(ep: EntryPoint) -> str:
    dist = ep.dist
    where = f"{dist.name} {dist.version}" if dist is not None else "unknown distribution"
    return f"entry point {ep.name!r} = {ep.value!r} ({where})"


def load_providers(eps: Iterable[EntryPoint] | None = None) -> dict[str, type[Provider]]:
    """Return every registered provider class by name; `eps` replaces the installed ones."""
    found: dict[str, type[Provider]] = {}
    origins: dict[str, str] = {}
    for ep in entry_points(group=GROUP) if eps is None else eps:
        origin = _origin(ep)
        try:
            loaded = ep.load()
        except Exception as exc:
            raise PluginError(
                f"provider plugin {origin} failed to load: {type(exc).__name__}: {exc}"
            ) from exc
        if not (isinstance(loaded, type) and issubclass(loaded, Provider)):
            raise PluginError(f"provider plugin {origin} is not a Provider subclass")
        declared = getattr(loaded, "name", None)
        if declared != ep.name:
            raise PluginError(
                f"provider plugin {origin} declares name {declared!r}; "
                "the class name attribute and the entry-point name must match"
            )
        if ep.name in found:
            raise PluginError(
                f"two providers are named {ep.name!r}: {origins[ep.name]} and {origin}; "
                "uninstall one of them"
            )
        found[ep.name] = loaded
        origins[ep.name] = origin
    return found


@cache
def _installed() -> dict[str, type[Provider]]:
    return load_providers()


def get_provider(name: str, eps: Iterable[EntryPoint] | None = None) -> type[Provider]:
    """Return the provider class registered as `name` (installed plugins load once)."""
    providers = load_providers(eps) if eps is not None else _installed()
    try:
        return providers[name]
    except KeyError:
        known = ", ".join(sorted(providers)) or "none"
        raise UnknownNameError(f"no provider named {name!r}; known providers: {known}") from None


def describe(provider_cls: type[Provider]) -> dict[str, Any]:
    """Return what `rotate providers` shows about a provider: name, summary, capabilities."""
    caps = provider_cls.capabilities
    doc = (provider_cls.__doc__ or "").strip().splitlines()
    return {
        "name": provider_cls.name,
        "summary": doc[0] if doc else "",
        "class": f"{provider_cls.__module__}:{provider_cls.__qualname__}",
        "automated_generate": caps.automated_generate,
        "automated_revoke": caps.automated_revoke,
        "verifiable_revocation": caps.verifiable_revocation,
        "max_live_credentials": caps.max_live_credentials,
        "operator_assisted": caps.operator_assisted,
    }
