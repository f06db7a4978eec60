"""A safe home on the host: the state directory, key owners, links, core dumps, the network.

Each test is a reproduction from issue 19 played by "another local user"; the ones that
need a second user chown files to `nobody` and so run only as root.
"""

from __future__ import annotations

import http.server
import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE
from tests.foundation.cli_helpers import ROTATE, rotate

NOBODY = 65534
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_state_directory_is_created_0700_even_under_umask_000(state_dir: Path) -> None:
    done = subprocess.run(
        [*ROTATE, "init"],
        capture_output=True,
        text=True,
        check=False,
        preexec_fn=lambda: os.umask(0),
    )
    assert done.returncode == 0, done.stderr
    assert _mode(state_dir) == 0o700
    assert _mode(state_dir / "keys") == 0o700
    assert _mode(state_dir / "keys" / "master.key") == 0o600


def test_a_state_directory_others_can_write_is_refused_with_the_fix(state_dir: Path) -> None:
    state_dir.mkdir()
    state_dir.chmod(0o777)
    done = rotate("init")
    assert done.returncode == 5, done.stderr
    assert f"chmod 700 {state_dir}" in done.stderr
    assert "writable by others (mode 0777)" in done.stderr
    assert not (state_dir / "keys").exists()


def test_a_keys_directory_others_can_write_is_refused(keys: Path) -> None:
    keys.chmod(0o777)
    done = rotate("check", "-i", str(EXAMPLE))
    assert done.returncode == 5, done.stderr
    assert f"chmod 700 {keys}" in done.stderr


@as_root
def test_a_state_directory_of_another_user_is_refused(state_dir: Path) -> None:
    state_dir.mkdir(mode=0o700)
    os.chown(state_dir, NOBODY, NOBODY)
    done = rotate("init")
    assert done.returncode == 5, done.stderr
    assert f"owned by uid {NOBODY}" in done.stderr and str(state_dir) in done.stderr


@as_root
def test_a_swapped_in_key_set_of_another_user_is_refused_by_check(keys: Path) -> None:
    for file in keys.iterdir():
        os.chown(file, NOBODY, NOBODY)
    done = rotate("check", "-i", str(EXAMPLE))
    assert done.returncode == 5, done.stderr
    assert f"owned by uid {NOBODY}" in done.stderr
    assert "master.key" in done.stderr


def test_a_key_file_readable_by_others_gives_5_from_check_as_elsewhere(keys: Path) -> None:
    (keys / "master.key").chmod(0o644)
    done = rotate("check", "-i", str(EXAMPLE))
    assert done.returncode == 5, done.stderr
    assert f"chmod 600 {keys / 'master.key'}" in done.stderr


def test_an_interrupted_init_is_not_a_dead_end(state_dir: Path) -> None:
    # What an init killed after its first file used to leave behind.
    (state_dir / "keys").mkdir(parents=True, mode=0o700)
    (state_dir / "keys" / "master.key").write_text("x\n")
    done = rotate("init")
    assert done.returncode == 5
    assert "stopped part-way" in done.stderr
    assert f"mv {state_dir / 'keys'} {state_dir / 'keys'}.partial && rotate init" in done.stderr
    os.rename(state_dir / "keys", state_dir / "keys.partial")
    assert rotate("init").returncode == 0


def test_a_link_at_run_lock_does_not_truncate_its_target(keys: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (keys.parent / "run.lock").symlink_to(victim)
    done = rotate("run", "-i", str(EXAMPLE))
    assert done.returncode == 5, done.stderr
    assert "run.lock is a symbolic link" in done.stderr
    assert victim.read_text() == "precious\n"


def test_a_link_at_last_error_log_is_replaced_not_followed(state_dir: Path, tmp_path: Path) -> None:
    from rotator.cli import _write_traceback

    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    state_dir.mkdir(mode=0o700)
    (state_dir / "last-error.log").symlink_to(victim)
    try:
        raise RuntimeError("boom")
    except RuntimeError as exc:
        where = _write_traceback(exc)
    assert where == str(state_dir / "last-error.log")
    assert victim.read_text() == "precious\n"
    log = state_dir / "last-error.log"
    assert not log.is_symlink() and _mode(log) == 0o600
    assert log.read_text().startswith("RuntimeError\n")


@as_root
def test_a_dotenv_link_planted_by_another_user_receives_nothing(tmp_path: Path) -> None:
    from rotator.errors import TargetConfigError
    from rotator.secret import Secret
    from rotator.targets.dotenv import DotenvTarget

    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    os.chown(victim, NOBODY, NOBODY)
    victim.chmod(0o644)
    link = tmp_path / ".env.local"
    link.symlink_to(victim)
    os.lchown(link, NOBODY, NOBODY)
    target = DotenvTarget({"path": ".env.local"}, "local", None, None, {"base_dir": str(tmp_path)})
    with pytest.raises(TargetConfigError, match="another user"):
        target.publish({"A": Secret("live-value")})
    assert victim.read_text() == "precious\n"
    assert _mode(victim) == 0o644


def test_core_dumps_are_off_for_the_process() -> None:
    code = (
        "import resource, sys\n"
        "sys.argv = ['rotate', '--version']\n"
        "from rotator import cli\n"
        "try:\n    cli.main()\nexcept SystemExit:\n    pass\n"
        "print('CORE', resource.getrlimit(resource.RLIMIT_CORE))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "CORE (0, 0)" in done.stdout


# ------------------------------------------------------------------ the network
class _Handler(http.server.BaseHTTPRequestHandler):
    mode = "ok"

    def do_GET(self) -> None:
        if self.path == "/trickle":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            for _ in range(200):
                try:
                    self.wfile.write(b" ")
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(0.05)
            return
        if self.path == "/huge":
            self.send_response(200)
            self.end_headers()  # no Content-Length: only reading can find out
            chunk = b"x" * 65536
            try:
                for _ in range(64):  # 4 MiB
                    self.wfile.write(chunk)
            except OSError:
                pass
            return
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _runtime(tmp_path: Path, network: str = "") -> object:
    from rotator import inventory
    from rotator.runtime import Runtime

    text = EXAMPLE.read_text() + ("\n[network]\n" + network if network else "")
    file = tmp_path / "inventory.toml"
    file.write_text(text)
    return Runtime(inventory=inventory.load(file), sleep=lambda _s: None)


def test_proxy_from_the_environment_is_ignored_unless_the_inventory_says_so(
    tmp_path: Path, server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A proxy nobody asked for would see the Cloudflare token and every new credential.
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("ALL_PROXY", "http://127.0.0.1:9")
    rt = _runtime(tmp_path)
    response = rt.http.request(  # type: ignore[attr-defined]
        "GET", server + "/", provider="test", operation="get", idempotent=True
    )
    assert response.json() == {"ok": True}


def test_check_names_the_proxy_and_ca_bundle_it_uses(tmp_path: Path, state_dir: Path) -> None:
    file = tmp_path / "inventory.toml"
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    file.write_text(
        EXAMPLE.read_text()
        + f'\n[network]\nproxy = "http://proxy.internal:3128"\nca_bundle = "{ca}"\n'
    )
    done = rotate("check", "--offline", "-i", str(file))
    assert done.returncode == 0, done.stderr
    assert "proxy http://proxy.internal:3128" in done.stdout
    assert f"CA bundle {ca}" in done.stdout
    plain = rotate("check", "--offline", "-i", str(EXAMPLE))
    assert "proxy none" in plain.stdout and "SSL_CERT_FILE ignored" in plain.stdout


def test_a_trickling_provider_is_cut_at_the_call_deadline(tmp_path: Path, server: str) -> None:
    from rotator.errors import RetryLaterError

    rt = _runtime(tmp_path, "call_deadline = 1\n")
    started = time.monotonic()
    with pytest.raises(RetryLaterError, match="DeadlineExceeded"):
        rt.http.request(  # type: ignore[attr-defined]
            "GET", server + "/trickle", provider="test", operation="get", idempotent=False
        )
    assert time.monotonic() - started < 5


def test_a_huge_answer_is_cut_at_the_size_cap(tmp_path: Path, server: str) -> None:
    from rotator.errors import RetryLaterError

    rt = _runtime(tmp_path, "max_response_bytes = 1048576\n")
    with pytest.raises(RetryLaterError, match="ResponseTooLarge"):
        rt.http.request(  # type: ignore[attr-defined]
            "GET", server + "/huge", provider="test", operation="get", idempotent=False
        )


def test_bad_network_values_are_inventory_problems(tmp_path: Path, state_dir: Path) -> None:
    file = tmp_path / "inventory.toml"
    file.write_text(
        EXAMPLE.read_text()
        + '\n[network]\nproxy = "proxy:3128"\ncall_deadline = 0\nca_bundle = "nope.pem"\n'
    )
    done = rotate("check", "--offline", "-i", str(file))
    assert done.returncode == 3
    for key in ("network.proxy", "network.call_deadline", "network.ca_bundle"):
        assert key in done.stderr
