"""Read and validate the inventory: environments, secrets, schedule, providers, credentials.

Validation reports every problem at once, each naming its key path, what was found and
what is expected, because a cron job that stops at the first typo wastes a day per typo.
Unknown keys are errors: a misspelt `soak` must not silently fall back to the default.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rotator.errors import InventoryError, UnknownNameError
from schedules.cycles import check_start_months

SCOPES = ("shared", "per-environment")
SHARED_ENVIRONMENTS = ("staging", "production")
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_PROVIDERS = ("resend", "stripe", "gcp-identity", "google-oauth")
DEFAULT_TARGETS = ("cloudflare-workers", "cloudflare-pages", "dotenv")
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_ENV_VAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class TargetSpec:
    kind: str
    options: Mapping[str, Any]


@dataclass(frozen=True)
class SignalSpec:
    """One monitoring signal of an environment (`[[environments.<env>.signals]]`)."""

    kind: str
    options: Mapping[str, Any]


@dataclass(frozen=True)
class Environment:
    name: str
    url: str
    health_path: str | None
    expected_status: int
    require_approval: bool
    targets: tuple[TargetSpec, ...]
    signals: tuple[SignalSpec, ...] = ()
    """Signals besides the health URL (which is the `health-url` signal when set)."""


@dataclass(frozen=True)
class SecretSpec:
    name: str
    provider: str
    scope: str
    options: Mapping[str, Any]
    environments: Mapping[str, Mapping[str, Any]]
    variable: str

    def scope_envs(self, inventory: Inventory) -> tuple[str, ...]:
        """Name the rotatable units of this secret: `shared`, or each environment."""
        if self.scope == "shared":
            return ("shared",)
        return tuple(e for e in inventory.environments if e in self.environments)

    def deploy_envs(self, scope_env: str) -> tuple[str, ...]:
        """Name the environments that receive the value of one unit."""
        return SHARED_ENVIRONMENTS if scope_env == "shared" else (scope_env,)

    def options_for(self, scope_env: str) -> dict[str, Any]:
        merged = dict(self.options)
        if scope_env != "shared":
            merged.update(self.environments.get(scope_env, {}))
        return merged


@dataclass(frozen=True)
class Window:
    days: tuple[str, ...]
    start: time
    end: time


@dataclass(frozen=True)
class CredentialRef:
    """Where one of the tool's own credentials comes from: an env var or a file path."""

    name: str
    env: str | None
    file: str | None
    # How often the tool rotates this credential itself (rotator/own); None: the default.
    rotate_every: str | None = None


@dataclass(frozen=True)
class Network:
    """How the tool reaches providers (`[network]`); nothing comes from the environment unasked."""

    proxy: str | None = None
    ca_bundle: str | None = None
    use_environment: bool = False
    call_deadline: float = 60.0
    max_response_bytes: int = 8 * 1024 * 1024

    def describe(self) -> str:
        """Say, for `rotate check`, which proxy and CA bundle the tool uses."""
        proxy = self.proxy or "none"
        ca = self.ca_bundle or "the system's default CA certificates"
        env = (
            "HTTPS_PROXY and SSL_CERT_FILE honoured (network.use_environment)"
            if self.use_environment
            else "HTTP(S)_PROXY and SSL_CERT_FILE ignored"
        )
        return (
            f"network: proxy {proxy}; CA bundle {ca}; {env}; each call at most "
            f"{self.call_deadline:g} s and {self.max_response_bytes} bytes"
        )


@dataclass(frozen=True)
class Inventory:
    path: Path | None
    time_zone: str
    quarter_start_months: tuple[int, ...]
    soak: str
    monitoring: str
    window: Window
    environments: Mapping[str, Environment]
    secrets: Mapping[str, SecretSpec]
    providers: Mapping[str, Mapping[str, str]]
    targets: Mapping[str, Mapping[str, str]]
    credentials: Mapping[str, CredentialRef]
    notifications: tuple[Mapping[str, Any], ...]
    audit: Mapping[str, Any]
    limits: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    health_failures: int = 4
    """Consecutive failed health checks that make an environment unhealthy..."""
    health_span: str = "60s"
    """...spread over at least this long: one flaky answer never starts a rollback."""
    network: Network = field(default_factory=Network)
    signal_grace: str = "6h"
    """How long a signal may answer `unknown` before the step waits for a person."""
    emergency_monitoring: str = "0s"
    """An emergency's monitoring window after promotion, before revocation (0: none)."""

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    @property
    def base_dir(self) -> Path:
        return self.path.parent if self.path else Path.cwd()

    def secret(self, name: str) -> SecretSpec:
        try:
            return self.secrets[name]
        except KeyError:
            known = ", ".join(sorted(self.secrets)) or "none"
            guess = _closest_name(name, tuple(self.secrets))
            hint = f" (did you mean {guess!r}?)" if guess else ""
            raise UnknownNameError(
                f"unknown secret {name!r}{hint}; the inventory defines: {known}"
            ) from None

    def environment(self, name: str) -> Environment:
        try:
            return self.environments[name]
        except KeyError:
            known = ", ".join(self.environments) or "none"
            guess = _closest_name(name, tuple(self.environments))
            hint = f" (did you mean {guess!r}?)" if guess else ""
            raise UnknownNameError(
                f"unknown environment {name!r}{hint}; the inventory defines: {known}"
            ) from None


class _Problems:
    """Collect problems with their key paths so all are reported at once."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, path: str, found: object, expected: str) -> None:
        shown = "nothing" if found is _MISSING else repr(found)
        self.items.append(f"{path}: found {shown}, expected {expected}")

    def unknown(self, path: str, table: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
        for key in table:
            if key not in allowed:
                hint = _closest(key, allowed)
                expected = f"one of {', '.join(allowed)}" + (
                    f" (did you mean {hint!r}?)" if hint else ""
                )
                self.items.append(f"{path}.{key}: unknown key, expected {expected}")


_MISSING = object()


def _closest(word: str, options: tuple[str, ...]) -> str | None:
    import difflib

    match = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return match[0] if match else None


def _closest_name(word: str, names: tuple[str, ...]) -> str | None:
    """Return the name `word` most likely meant, ignoring case (secret names are upper case)."""
    by_case = {n.lower(): n for n in names}
    match = _closest(word.lower(), tuple(by_case))
    return by_case[match] if match else None


def _table(p: _Problems, data: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        p.add(path, value, "a table")
        return {}
    return value


def _str(
    p: _Problems, data: Mapping[str, Any], key: str, path: str, default: Any = _MISSING
) -> str:
    value = data.get(key, default)
    if value is _MISSING:
        p.add(path, _MISSING, "a string")
        return ""
    if not isinstance(value, str) or not value:
        p.add(path, value, "a non-empty string")
        return ""
    return value


def _check_duration(p: _Problems, value: object, path: str) -> str:
    from schedules import parse_duration

    try:
        if not isinstance(value, str):
            raise ValueError("not text")
        parse_duration(value)
    except ValueError:
        p.add(path, value, 'a duration such as "24h", "30m", "7d", "90s" or "1d12h"')
        return "24h"
    return value


def _check_clock(p: _Problems, value: object, path: str) -> time:
    if isinstance(value, str):
        try:
            return time.fromisoformat(value)
        except ValueError:
            pass
    p.add(path, value, 'a local time "HH:MM"')
    return time(0, 0)


def load(path: str | Path) -> Inventory:
    """Read and validate an inventory file; raise `InventoryError` listing every problem."""
    file = Path(path).expanduser()
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        raise InventoryError(
            [f"file not found: {file} (pass --inventory or set ROTATOR_INVENTORY)"]
        ) from None
    except OSError as exc:
        raise InventoryError([f"cannot read {file}: {exc.strerror}"]) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InventoryError([f"not valid TOML: {exc}"], str(file)) from None
    return parse(data, file)


def parse(data: Mapping[str, Any], path: Path | None = None) -> Inventory:
    """Validate an inventory already read from TOML."""
    from rotator.plugins import known_provider_names, known_target_names

    p = _Problems()
    top = (
        "settings",
        "maintenance_window",
        "environments",
        "secrets",
        "providers",
        "targets",
        "credentials",
        "notifications",
        "audit",
        "limits",
        "network",
    )
    p.unknown("", data, top)
    p.items = [i[1:] if i.startswith(".") else i for i in p.items]

    settings = _table(p, data, "settings", "settings")
    p.unknown(
        "settings",
        settings,
        (
            "time_zone",
            "quarter_start_months",
            "soak",
            "monitoring",
            "health_failures",
            "health_span",
            "signal_grace",
            "emergency_monitoring",
        ),
    )
    tz_name = settings.get("time_zone", "UTC")
    try:
        if not isinstance(tz_name, str):
            raise ZoneInfoNotFoundError
        ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        p.add("settings.time_zone", tz_name, 'an IANA time zone such as "Europe/London"')
        tz_name = "UTC"
    # One validation of the schedule values: the very functions `plan`, `calendar` and
    # `run` call, so whatever `rotate check` accepts, they can execute.
    months = settings.get("quarter_start_months", [1, 4, 7, 10])
    try:
        if not isinstance(months, list):
            raise ValueError("a list of months such as [1, 4, 7, 10]")
        months = list(check_start_months(months))
    except ValueError as exc:
        p.add("settings.quarter_start_months", months, str(exc))
        months = [1, 4, 7, 10]
    soak = _check_duration(p, settings.get("soak", "24h"), "settings.soak")
    monitoring = _check_duration(p, settings.get("monitoring", "24h"), "settings.monitoring")
    health_failures = settings.get("health_failures", 4)
    if (
        not isinstance(health_failures, int)
        or isinstance(health_failures, bool)
        or not (1 <= health_failures <= 20)
    ):
        p.add("settings.health_failures", health_failures, "a whole number from 1 to 20")
        health_failures = 4
    health_span = _check_duration(p, settings.get("health_span", "60s"), "settings.health_span")
    signal_grace = _check_duration(p, settings.get("signal_grace", "6h"), "settings.signal_grace")
    emergency_monitoring = _check_duration(
        p, settings.get("emergency_monitoring", "0s"), "settings.emergency_monitoring"
    )

    mw = _table(p, data, "maintenance_window", "maintenance_window")
    p.unknown("maintenance_window", mw, ("days", "start", "end"))
    days = mw.get("days", ["tue", "wed", "thu"])
    if not isinstance(days, list) or not days or not all(d in DAY_NAMES for d in days):
        p.add("maintenance_window.days", days, f"a list of days from {', '.join(DAY_NAMES)}")
        days = ["tue"]
    start = _check_clock(p, mw.get("start", "02:00"), "maintenance_window.start")
    end = _check_clock(p, mw.get("end", "04:00"), "maintenance_window.end")
    if start == end:
        p.add("maintenance_window.end", mw.get("end", "04:00"), "a time different from start")
    window = Window(tuple(days), start, end)
    if not p.items:
        from schedules import parse_window

        try:
            parse_window(list(days), start.strftime("%H:%M"), end.strftime("%H:%M"), tz_name)
        except ValueError as exc:
            p.add("maintenance_window", dict(mw), str(exc))

    providers = _urls(p, data, "providers")
    targets_urls = _urls(p, data, "targets")
    target_kinds = known_target_names()
    provider_names = known_provider_names()

    environments: dict[str, Environment] = {}
    envs_raw = _table(p, data, "environments", "environments")
    if not envs_raw:
        p.add("environments", _MISSING, "at least one [environments.<name>] table")
    env_keys = ("url", "health_path", "expected_status", "require_approval", "targets", "signals")
    credential_names = data.get("credentials", {})
    credential_names = set(credential_names) if isinstance(credential_names, dict) else set()
    for env_name, env in envs_raw.items():
        ep = f"environments.{env_name}"
        if not isinstance(env, dict):
            p.add(ep, env, "a table")
            continue
        p.unknown(ep, env, env_keys)
        url = _str(p, env, "url", f"{ep}.url")
        if url and not url.startswith(("http://", "https://")):
            p.add(f"{ep}.url", url, "an http:// or https:// URL")
        # No health_path means no health check (a developer's local environment).
        health_path = env.get("health_path")
        if health_path is not None and (
            not isinstance(health_path, str) or not health_path.startswith("/")
        ):
            p.add(f"{ep}.health_path", health_path, 'a path starting with "/"')
            health_path = None
        status = env.get("expected_status", 200)
        if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
            p.add(f"{ep}.expected_status", status, "an HTTP status code such as 200")
            status = 200
        approval = env.get("require_approval", False)
        if not isinstance(approval, bool):
            p.add(f"{ep}.require_approval", approval, "true or false")
            approval = False
        specs: list[TargetSpec] = []
        raw_targets = env.get("targets", [])
        if not isinstance(raw_targets, list):
            p.add(f"{ep}.targets", raw_targets, "a list of target tables")
            raw_targets = []
        for i, t in enumerate(raw_targets):
            tp = f"{ep}.targets[{i}]"
            found = _kind_table(p, tp, t, target_kinds)
            if found is None:
                continue
            kind, options = found
            for problem in _target_problems(str(kind), options):
                p.items.append(f"{tp}.{problem}")
            specs.append(TargetSpec(str(kind), options))
        signals = _signals(p, env.get("signals", []), ep, credential_names)
        environments[str(env_name)] = Environment(
            str(env_name), url, health_path, status, approval, tuple(specs), signals
        )

    secrets: dict[str, SecretSpec] = {}
    for name, s in _table(p, data, "secrets", "secrets").items():
        sp = f"secrets.{name}"
        if not isinstance(s, dict):
            p.add(sp, s, "a table")
            continue
        p.unknown(sp, s, ("provider", "scope", "options", "environments", "variable"))
        provider = s.get("provider", _MISSING)
        if provider not in provider_names:
            p.add(f"{sp}.provider", provider, f"one of {', '.join(sorted(provider_names))}")
        scope = s.get("scope", "shared")
        if scope not in SCOPES:
            p.add(f"{sp}.scope", scope, f"one of {', '.join(SCOPES)}")
            scope = "shared"
        provider_options = _table(p, s, "options", f"{sp}.options")
        per_env = _table(p, s, "environments", f"{sp}.environments")
        for env_name, env_opts in per_env.items():
            if env_name not in envs_raw:
                p.add(
                    f"{sp}.environments.{env_name}",
                    env_name,
                    f"an environment defined under [environments] ({', '.join(envs_raw)})",
                )
            if not isinstance(env_opts, dict):
                p.add(f"{sp}.environments.{env_name}", env_opts, "a table of provider options")
        if scope == "per-environment" and not per_env:
            p.add(
                f"{sp}.environments",
                _MISSING,
                "one [secrets.<name>.environments.<env>] table per environment",
            )
        if scope == "shared":
            for env_name in SHARED_ENVIRONMENTS:
                if env_name not in envs_raw:
                    p.add(
                        "environments",
                        sorted(envs_raw),
                        f"a {env_name!r} environment for the shared secret {name}",
                    )
        variable = s.get("variable", name)
        if not isinstance(variable, str) or not _ENV_VAR.match(variable):
            p.add(f"{sp}.variable", variable, "an environment variable name")
            variable = str(name)
        secrets[str(name)] = SecretSpec(
            str(name),
            str(provider),
            str(scope),
            dict(provider_options),
            {k: dict(v) for k, v in per_env.items() if isinstance(v, dict)},
            variable,
        )

    credentials: dict[str, CredentialRef] = {}
    for name, ref in _table(p, data, "credentials", "credentials").items():
        cp = f"credentials.{name}"
        # Never echo what was found: a credential pasted into the inventory is a value.
        if not isinstance(ref, dict):
            p.items.append(
                f'{cp}: found a {type(ref).__name__} (not shown), expected {{ env = "VAR" }} or '
                '{ file = "/path" }: never the value itself'
            )
            continue
        p.unknown(cp, ref, ("env", "file", "rotate_every"))
        env_var, file_path = ref.get("env"), ref.get("file")
        every = ref.get("rotate_every")
        if every is not None and not _is_duration(every):
            p.add(f"{cp}.rotate_every", every, 'a duration such as "30d"')
        if (env_var is None) == (file_path is None):
            p.items.append(
                f'{cp}: expected exactly one of env = "VAR" or file = "/path" '
                "(never the value itself)"
            )
            continue
        if env_var is not None and (not isinstance(env_var, str) or not _ENV_VAR.match(env_var)):
            p.add(f"{cp}.env", env_var, "an environment variable name")
        if file_path is not None and not isinstance(file_path, str):
            p.add(f"{cp}.file", file_path, "a file path")
        credentials[str(name)] = CredentialRef(
            str(name), env_var, file_path, every if isinstance(every, str) else None
        )

    notifications_raw = data.get("notifications", {})
    channels: list[Mapping[str, Any]] = []
    if not isinstance(notifications_raw, dict):
        p.add("notifications", notifications_raw, "a table with a channels list")
    else:
        p.unknown("notifications", notifications_raw, ("channels",))
        raw_channels = notifications_raw.get("channels", [])
        if not isinstance(raw_channels, list):
            p.add("notifications.channels", raw_channels, "a list of channel tables")
            raw_channels = []
        for i, ch in enumerate(raw_channels):
            chp = f"notifications.channels[{i}]"
            if not isinstance(ch, dict) or ch.get("kind") not in ("email", "webhook", "command"):
                p.add(
                    f"{chp}.kind",
                    ch.get("kind") if isinstance(ch, dict) else ch,
                    "one of email, webhook, command",
                )
                continue
            allowed = {
                "email": ("kind", "to", "sender", "api_key"),
                "webhook": ("kind", "url"),
                "command": ("kind", "command"),
            }[ch["kind"]]
            p.unknown(chp, ch, allowed)
            channels.append(dict(ch))

    audit = _table(p, data, "audit", "audit")
    p.unknown("audit", audit, ("origin", "checkpoint_every", "external_sink", "key_name"))
    every = audit.get("checkpoint_every", 1000)
    if not isinstance(every, int) or isinstance(every, bool) or every < 1:
        p.add("audit.checkpoint_every", every, "a positive number of events")

    limits: dict[str, dict[str, float]] = {}
    for prov, lim in _table(p, data, "limits", "limits").items():
        lp = f"limits.{prov}"
        if not isinstance(lim, dict):
            p.add(lp, lim, "a table with rate and concurrency")
            continue
        p.unknown(
            lp,
            lim,
            ("rate", "concurrency", "share") if prov == "cloudflare" else ("rate", "concurrency"),
        )
        for key, value in lim.items():
            if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
                p.add(f"{lp}.{key}", value, "a positive number")
        share = lim.get("share")
        if isinstance(share, int | float) and not isinstance(share, bool) and share > 1200:
            p.add(
                f"{lp}.share",
                share,
                "at most 1200 (Cloudflare's requests per 5 minutes per user; "
                "leave room for CI and the dashboard)",
            )
        limits[str(prov)] = {k: float(v) for k, v in lim.items() if isinstance(v, int | float)}

    network = _network(p, data, path)

    if p.items:
        raise InventoryError(p.items, str(path) if path else None)
    return Inventory(
        path=path,
        time_zone=str(tz_name),
        quarter_start_months=tuple(sorted(months)),
        soak=soak,
        monitoring=monitoring,
        health_failures=health_failures,
        health_span=health_span,
        signal_grace=signal_grace,
        emergency_monitoring=emergency_monitoring,
        window=window,
        environments=environments,
        secrets=secrets,
        providers=providers,
        targets=targets_urls,
        credentials=credentials,
        notifications=tuple(channels),
        audit=dict(audit),
        limits=limits,
        network=network,
    )


def _network(p: _Problems, data: Mapping[str, Any], path: Path | None) -> Network:
    net = _table(p, data, "network", "network")
    keys = ("proxy", "ca_bundle", "use_environment", "call_deadline", "max_response_bytes")
    p.unknown("network", net, keys)
    proxy = net.get("proxy")
    if proxy is not None and (
        not isinstance(proxy, str) or not proxy.startswith(("http://", "https://", "socks5://"))
    ):
        p.add("network.proxy", proxy, 'a proxy URL such as "http://proxy.internal:3128"')
        proxy = None
    ca = net.get("ca_bundle")
    if ca is not None:
        if not isinstance(ca, str):
            p.add("network.ca_bundle", ca, "the path of a PEM file of CA certificates")
            ca = None
        else:
            file = Path(ca).expanduser()
            if not file.is_absolute() and path is not None:
                file = path.parent / file
            if not file.is_file():
                p.add("network.ca_bundle", ca, "an existing PEM file of CA certificates")
            ca = str(file)
    use_env = net.get("use_environment", False)
    if not isinstance(use_env, bool):
        p.add("network.use_environment", use_env, "true or false")
        use_env = False
    deadline = net.get("call_deadline", 60)
    if (
        not isinstance(deadline, int | float)
        or isinstance(deadline, bool)
        or not (1 <= deadline <= 600)
    ):
        p.add("network.call_deadline", deadline, "seconds between 1 and 600")
        deadline = 60
    cap = net.get("max_response_bytes", 8 * 1024 * 1024)
    if not isinstance(cap, int) or isinstance(cap, bool) or cap < 1024:
        p.add("network.max_response_bytes", cap, "a number of bytes, at least 1024")
        cap = 8 * 1024 * 1024
    return Network(proxy, ca, use_env, float(deadline), cap)


def _urls(p: _Problems, data: Mapping[str, Any], key: str) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for name, table in _table(p, data, key, key).items():
        tp = f"{key}.{name}"
        if not isinstance(table, dict):
            p.add(tp, table, "a table of base URLs")
            continue
        urls: dict[str, str] = {}
        for k, v in table.items():
            if not k.endswith("_url"):
                p.items.append(
                    f"{tp}.{k}: unknown key, expected keys ending in _url (base_url, token_url...)"
                )
                continue
            if not isinstance(v, str) or not v.startswith(("http://", "https://")):
                p.add(f"{tp}.{k}", v, "an http:// or https:// URL")
                continue
            urls[k] = v.rstrip("/")
        out[str(name)] = urls
    return out


def _signals(
    p: _Problems, raw: object, ep: str, credential_names: set[str]
) -> tuple[SignalSpec, ...]:
    """Validate `[[environments.<env>.signals]]`: known kinds, their options, credentials."""
    from rotator.plugins import known_signal_names

    if not isinstance(raw, list):
        p.add(f"{ep}.signals", raw, "a list of signal tables ([[environments.<env>.signals]])")
        return ()
    kinds = known_signal_names()
    specs: list[SignalSpec] = []
    for i, t in enumerate(raw):
        sp = f"{ep}.signals[{i}]"
        found = _kind_table(p, sp, t, kinds)
        if found is None:
            continue
        kind, options = found
        from rotator.signals.base import get_signal

        cls = get_signal(str(kind))
        for problem in cls.validate_options(options):
            p.items.append(f"{sp}.{problem}")
        for key in cls.credential_options:
            name = options.get(key)
            if isinstance(name, str) and name not in credential_names:
                p.items.append(
                    f"{sp}.{key}: found {name!r}, expected the name of a [credentials] entry "
                    f'(add [credentials] {name} = {{ env = "VAR" }} or {{ file = "/path" }})'
                )
        specs.append(SignalSpec(str(kind), options))
    return tuple(specs)


def _kind_table(
    p: _Problems, path: str, table: Any, kinds: Iterable[str]
) -> tuple[str, dict[str, Any]] | None:
    """Return a `{ kind = ..., ... }` table's kind and options, or None (problem added)."""
    if not isinstance(table, dict):
        p.add(path, table, "a table with a kind")
        return None
    kind = table.get("kind")
    known = set(kinds)
    if kind not in known:
        p.add(
            f"{path}.kind",
            kind if kind is not None else _MISSING,
            f"one of {', '.join(sorted(known))}",
        )
        return None
    return str(kind), {k: v for k, v in table.items() if k != "kind"}


def _target_problems(kind: str, options: Mapping[str, Any]) -> list[str]:
    from rotator.plugins import target_option_problems

    return target_option_problems(kind, options)


def _is_duration(value: Any) -> bool:
    """True for a duration `schedules.durations.parse_duration` reads (own credentials)."""
    from schedules.durations import parse_duration

    if not isinstance(value, str):
        return False
    try:
        return parse_duration(value).total_seconds() > 0
    except ValueError:
        return False
