"""Serve the emulated providers on 127.0.0.1, in-process, with faults and a request hook.

Each request is: matched to a route, counted, offered to the `on_request` hook ("before"),
perhaps answered by a fault instead, applied under the world's lock, offered to the hook
again ("after", the change already made), then answered. The access log shows the method,
the path without its query string and the status, never a body or a header.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from rotator.clock import now as real_now
from rotator.sandbox import (
    cloudflare,
    cloudflare_tokens,
    console,
    control,
    environments,
    google_apikeys,
    google_oauth,
    iam,
    identitytoolkit,
    observability,
    resend,
    stripe,
)
from rotator.sandbox.environments import DEFAULT_ENVIRONMENTS, EnvironmentBinding, HealthRecord
from rotator.sandbox.faults import Fault, FaultInjector, FaultProfile, profile_named
from rotator.sandbox.google_oauth import TOKEN_PATH
from rotator.sandbox.resend import SentEmail
from rotator.sandbox.routing import BadBodyError, Family, Match, Reply, Request, Router
from rotator.sandbox.seed import SeededValue, seed_bandofbakers
from rotator.sandbox.world import World

RequestHook = Callable[[int, str, str, str], None]
"""Called with (n, method, path, phase), phase "before" or "after"; see `Sandbox`."""

logger = logging.getLogger(__name__)

_FALLBACK = Family("unknown", "", control.control_error, faultable=False, counted=False)


class DropConnectionError(Exception):
    """Raised by a request hook to close the connection without answering."""


def _build_router() -> Router:
    router = Router(_FALLBACK)
    for module in (
        resend,
        stripe,
        google_oauth,
        google_apikeys,
        iam,
        identitytoolkit,
        cloudflare,
        environments,
        console,
        control,
    ):
        extra = cloudflare_tokens.ROUTES if module is cloudflare else []
        router.add(module.FAMILY, [*module.ROUTES, *extra])
    router.add(observability.ROLLBAR, observability.ROLLBAR_ROUTES)
    router.add(observability.LOGFLARE, observability.LOGFLARE_ROUTES)
    return router


class Sandbox:
    """A local stand-in for Resend, Stripe, Google and Cloudflare, plus the app's health.

    `faults` is a `FaultProfile` or a profile name ("default" misbehaves a little, like
    Pebble); `seed` makes the faults repeatable. `clock` drives expiry delays, operation
    timing and Cloudflare's block. `on_request(n, method, path, phase)` is called for each
    provider or health request (console and control requests are not counted): "before"
    ahead of applying it, "after" once applied but before the answer is sent. A hook that
    raises `DropConnectionError` makes the sandbox close the connection without answering.
    """

    def __init__(
        self,
        port: int = 0,
        *,
        faults: FaultProfile | str = "default",
        seed: int | None = 0,
        clock: Callable[[], datetime] = real_now,
        on_request: RequestHook | None = None,
        host: str = "127.0.0.1",
        environments: Iterable[EnvironmentBinding] = DEFAULT_ENVIRONMENTS,
        account_id: str = "sandbox-account",
        log: Callable[[str], None] | None = None,
    ) -> None:
        profile = profile_named(faults) if isinstance(faults, str) else faults
        self.world = World(clock, FaultInjector(profile, seed), environments, account_id)
        self.on_request = on_request
        self._host, self._port = host, port
        self._log = log
        self._router = _build_router()
        self._numbers = itertools.count(1)
        self._numbers_lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> Sandbox:
        if self._server is not None:
            raise RuntimeError("the sandbox is already running")
        server = ThreadingHTTPServer((self._host, self._port), _handler_class(self))
        server.daemon_threads = True
        self._server = server
        self.world.base_url = self.base_url
        # A short poll interval keeps stop() quick; tests start and stop many sandboxes.
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.02,), name="rotator-sandbox", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the sandbox is not running; call start() first")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def token_url(self) -> str:
        return self.base_url + TOKEN_PATH

    # -- the world ---------------------------------------------------------------------

    def seed_bandofbakers(self) -> dict[str, SeededValue]:
        """Create Band of Bakers' credentials and deployments; return them by `SECRET[@env]`."""
        with self.world.lock:
            return seed_bandofbakers(self.world)

    @property
    def cloudflare_token(self) -> str:
        return self.world.cloudflare.api_token

    @property
    def rollbar_token(self) -> str:
        return self.world.observability.rollbar_token

    @property
    def logflare_key(self) -> str:
        return self.world.observability.logflare_key

    @property
    def account_id(self) -> str:
        return self.world.cloudflare.account_id

    def write_service_account_file(self, path: str | Path) -> Path:
        """Write the service account's JSON key file (mode 0600), its token_uri the sandbox."""
        target = Path(path)
        key_file = self.world.service_account.key_file(self.token_url)
        target.touch(mode=0o600, exist_ok=True)
        target.chmod(0o600)
        target.write_text(json.dumps(key_file, indent=2), encoding="utf-8")
        return target

    def set_faults(self, faults: FaultProfile | str) -> None:
        self.world.faults.set_profile(profile_named(faults) if isinstance(faults, str) else faults)

    @property
    def faults(self) -> FaultProfile:
        return self.world.profile

    @property
    def emails(self) -> list[SentEmail]:
        with self.world.lock:
            return list(self.world.resend.emails)

    @property
    def health_history(self) -> list[HealthRecord]:
        with self.world.lock:
            self.world.record_health("observed")
            return list(self.world.history)

    def state(self) -> dict[str, Any]:
        with self.world.lock:
            return control.state_summary(self.world)

    # -- serving -----------------------------------------------------------------------

    def serve(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Reply:
        """Answer one request; the HTTP handler only parses and writes."""
        split = urlsplit(target)
        path = split.path
        match = self._router.match(method, path)
        number = self._count(match, method, path)
        world = self.world
        with world.lock:
            world.requests[match.key] += 1
        if number is not None:
            self._call_hook(number, method, path, "before")
        reply = self._fault_reply(match)
        if reply is None:
            query = dict(parse_qsl(split.query, keep_blank_values=True))
            request = Request(method, path, query, headers, body, match.params)
            reply = self._apply(match, request)
        for name, value in match.family.extra_headers.items():
            reply.headers.setdefault(name, value)
        if match.family.name == "cloudflare":
            with world.lock:
                reply.headers.setdefault("ratelimit", world.cloudflare.spend(world.now()))
        if number is not None:
            self._call_hook(number, method, path, "after")
        return reply

    def _count(self, match: Match, method: str, path: str) -> int | None:
        if not match.family.counted:
            return None
        with self._numbers_lock:
            return next(self._numbers)

    def _call_hook(self, number: int, method: str, path: str, phase: str) -> None:
        if self.on_request is not None:
            self.on_request(number, method, path, phase)

    def _fault_reply(self, match: Match) -> Reply | None:
        family = match.family
        if not family.faultable:
            return None
        profile = self.world.profile
        if profile.latency:
            time.sleep(profile.latency)
        fault: Fault | None = self.world.faults.decide(family.name, self.world.now())
        if fault is None:
            return None
        if fault.kind == "drop":
            return Reply(0, drop=True)
        if fault.kind == "429":
            reply = family.error(429, "Too many requests; slow down and retry later.")
            reply.headers["retry-after"] = str(fault.retry_after)
            return reply
        return family.error(503, "The service is temporarily unavailable; retry later.")

    def _apply(self, match: Match, request: Request) -> Reply:
        world = self.world
        with world.lock:
            world.record_health("observed")
            if match.error is not None or match.route is None:
                return match.error or match.family.error(404, "no route")
            try:
                reply = match.route.handler(world, request)
            except BadBodyError as exc:
                reply = match.family.error(400, str(exc))
            except Exception as exc:
                # Log where, never what: the exception's message could quote a request body.
                frame = traceback.extract_tb(exc.__traceback__)[-1]
                logger.error(
                    "sandbox handler %s failed: %s at %s:%s",
                    match.key,
                    type(exc).__name__,
                    frame.filename,
                    frame.lineno,
                )
                reply = match.family.error(500, "internal error in the sandbox")
            world.record_health(match.key)
            return reply

    def log_access(self, method: str, path: str, status: int | str) -> None:
        if self._log is not None:
            self._log(f"{method} {path} {status}")


def _handler_class(sandbox: Sandbox) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "rotator-sandbox"
        # Idle keep-alive connections end on their own, so stop() leaves no thread behind.
        timeout = 10
        # Headers and body go out as separate writes; with Nagle on, each answer would
        # wait out the client's delayed ACK (about 40 ms).
        disable_nagle_algorithm = True

        def _serve(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {name.lower(): value for name, value in self.headers.items()}
            path = urlsplit(self.path).path
            try:
                reply = sandbox.serve(self.command, self.path, headers, body)
            except DropConnectionError:
                reply = Reply(0, drop=True)
            except Exception as exc:
                logger.error("sandbox request hook failed: %s", type(exc).__name__)
                reply = Reply(0, drop=True)
            if reply.drop:
                sandbox.log_access(self.command, path, "dropped")
                self.close_connection = True
                return
            self.send_response(reply.status)
            self.send_header("content-type", reply.content_type)
            self.send_header("content-length", str(len(reply.body)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(reply.body)
            sandbox.log_access(self.command, path, reply.status)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            # The default log prints the request line, query string and all; ours is above.
            return

    return _Handler
