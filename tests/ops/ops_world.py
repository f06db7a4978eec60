"""A seeded sandbox, an imported inventory, a webhook receiver and a simulated clock.

The same set-up as `rotator.demo`, cut down for tests that drive `Engine.run()` day by day
and look at what the notification channels received.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from rotator import clock, commands
from rotator import inventory as inv_mod
from rotator.demo import LONDON, SimulatedClock, _notification_key
from rotator.engine import Engine
from rotator.runtime import Runtime
from rotator.sandbox import Sandbox
from rotator.sandbox.inventory import sandbox_environment, sandbox_inventory
from rotator.secret import Secret


class WebhookReceiver:
    """Collect the JSON bodies POSTed to a local HTTP server."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.raw: list[bytes] = []
        received = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                data = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                received.raw.append(data)
                received.bodies.append(json.loads(data))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def __enter__(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def closed_port_url() -> str:
    """Return a URL on 127.0.0.1 where nothing listens (the port was bound, then freed)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


@dataclass
class OpsWorld:
    sim: SimulatedClock
    sandbox: Sandbox
    inventory: inv_mod.Inventory
    seeded: dict[str, Any]
    notify_key: str
    workdir: Path
    extra_values: list[str] = field(default_factory=list)

    def engine(self, actor: str = "cron@test") -> Engine:
        os.environ["ROTATOR_ACTOR"] = actor
        return Engine(Runtime(inventory=self.inventory, clock=self.sim, sleep=self.sim.sleep))

    def at(self, day: date, hour: int = 2, minute: int = 30) -> None:
        self.sim.set(
            datetime.combine(day, datetime.min.time(), LONDON).replace(hour=hour, minute=minute)
        )

    def issued_values(self) -> set[str]:
        """Return every credential value the sandbox issued or was handed, old and new."""
        world = self.sandbox.world
        with world.lock:
            values = {v.value for v in self.seeded.values()}
            values |= {k.token for k in world.resend.keys.values()}
            values |= {k.secret for k in world.stripe.keys.values()}
            values |= {k.key_string for k in world.apikeys.keys.values()}
            for client in world.google.clients.values():
                values |= {s.value for s in client.secrets.values()}
            values |= set(world.google.tokens)
            for script in world.cloudflare.scripts.values():
                values |= {value for _kind, value in script.secrets.values()}
            values.add(world.cloudflare.api_token)
        values.add(self.notify_key)
        values |= set(self.extra_values)
        return {v for v in values if v}


@contextmanager
def ops_world(
    workdir: Path,
    *,
    start: date = date(2027, 2, 10),
    webhook_url: str | None = None,
    notify_email: bool = True,
) -> Iterator[OpsWorld]:
    """Start a fault-free sandbox on a simulated clock and import today's values."""
    from rotator.keys import init_keys

    sim = SimulatedClock(
        datetime.combine(start, datetime.min.time(), LONDON).replace(hour=2, minute=30)
    )
    saved = dict(os.environ)
    with (
        clock.simulated(sim),
        Sandbox(faults="none", seed=7) as sandbox,
        httpx.Client(timeout=10.0) as console,
    ):
        seeded = sandbox.seed_bandofbakers()
        notify_key = _notification_key(console, sandbox.base_url, seeded)
        path = sandbox_inventory(sandbox, workdir / "world", webhook_url=webhook_url,
                                 notify_email=notify_email)  # fmt: skip
        os.environ.update(sandbox_environment(sandbox, notify_key))
        try:
            init_keys()
            world = OpsWorld(sim, sandbox, inv_mod.load(path), seeded, notify_key, workdir)
            setup = world.engine("ops@test")
            for label, value in seeded.items():
                name, _, env = label.partition("@")
                unit = setup.unit(name, env or None)
                commands.import_value(setup, unit, Secret(value.value), value.ref)
            yield world
        finally:
            os.environ.clear()
            os.environ.update(saved)
