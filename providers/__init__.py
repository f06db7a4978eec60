"""Provider plugins: the contract, the shared HTTP layer and the entry-point registry.

Import-light on purpose: `rotate --help` imports this package, so the names that need
httpx (`HttpClient`, `RateLimit`, `redact_url`) are loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from providers.base import (
    Capabilities,
    CredentialSource,
    Generated,
    HttpProvider,
    Provider,
    ProviderContext,
    credential_name,
    raise_for,
)
from providers.registry import GROUP, PluginError, describe, get_provider, load_providers

if TYPE_CHECKING:
    from providers.http import HttpClient, RateLimit, redact_url

__all__ = [
    "GROUP",
    "Capabilities",
    "CredentialSource",
    "Generated",
    "HttpClient",
    "HttpProvider",
    "PluginError",
    "Provider",
    "ProviderContext",
    "RateLimit",
    "credential_name",
    "describe",
    "get_provider",
    "load_providers",
    "raise_for",
    "redact_url",
]

_LAZY = frozenset({"HttpClient", "RateLimit", "redact_url"})


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from providers import http

        return getattr(http, name)
    raise AttributeError(f"module 'providers' has no attribute {name!r}")
