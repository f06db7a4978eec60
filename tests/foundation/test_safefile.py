"""`rotator.safefile`: the helpers other modules write through (links, modes, failures)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from rotator.errors import OutputFileError, StateFileError, UnsafePathError
from rotator.safefile import ensure_private_dir, replacing, write_output, write_private


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    return victim


def test_write_private_replaces_a_link_instead_of_following_it(tmp_path: Path) -> None:
    home = ensure_private_dir(tmp_path / "home")
    victim = _victim(tmp_path)
    (home / "report.html").symlink_to(victim)
    write_private(home / "report.html", "<p>ok</p>")
    assert victim.read_text() == "precious\n"
    assert not (home / "report.html").is_symlink()
    assert stat.S_IMODE((home / "report.html").stat().st_mode) == 0o600


def test_write_private_refuses_a_directory_others_can_write(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(UnsafePathError, match="chmod 700"):
        write_private(shared / "x", "data")
    assert not (shared / "x").exists()


def test_write_output_names_the_path_it_cannot_write(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OutputFileError, match=str(blocker / "out.prom")):
        write_output(blocker / "out.prom", "x")


def test_replacing_streams_and_leaves_nothing_on_error(tmp_path: Path) -> None:
    target = tmp_path / "export.jsonl"
    victim = _victim(tmp_path)
    target.symlink_to(victim)
    with replacing(target, 0o644) as fh:
        fh.write(b"line\n")
    assert target.read_bytes() == b"line\n" and victim.read_text() == "precious\n"
    with pytest.raises(RuntimeError), replacing(target) as fh:
        fh.write(b"half")
        raise RuntimeError("stop")
    assert target.read_bytes() == b"line\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export.jsonl", "victim"]


def test_ensure_private_dir_names_what_it_cannot_create(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StateFileError, match="cannot create the state directory"):
        ensure_private_dir(blocker / "state")
    assert not os.path.exists(blocker / "state")


def test_a_state_directory_reached_by_our_own_link_is_accepted(tmp_path: Path) -> None:
    real = ensure_private_dir(tmp_path / "data")
    (tmp_path / "home").symlink_to(real)
    assert ensure_private_dir(tmp_path / "home") == tmp_path / "home"
    write_private(tmp_path / "home" / "x", "ok")
    assert (real / "x").read_text() == "ok"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_a_state_directory_link_of_another_user_is_refused(tmp_path: Path) -> None:
    real = ensure_private_dir(tmp_path / "data")
    (tmp_path / "home").symlink_to(real)
    os.lchown(tmp_path / "home", 65534, 65534)
    with pytest.raises(UnsafePathError, match="symbolic link owned by uid 65534"):
        ensure_private_dir(tmp_path / "home")
