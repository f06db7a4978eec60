from __future__ import annotations

import os
import stat

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rotator.errors import TargetConfigError, TargetError
from rotator.secret import Secret
from rotator.targets import dotenv
from rotator.targets.dotenv import DotenvTarget, quote, render


def target(tmp_path, path=".env.local", **options):
    return DotenvTarget({"path": path, **options}, "local", None, None, {"base_dir": str(tmp_path)})


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_creates_the_file_with_mode_0600(tmp_path):
    target(tmp_path).publish({"API_KEY": Secret("abc123")})
    written = tmp_path / ".env.local"
    assert written.read_text() == "API_KEY=abc123\n"
    assert mode(written) == 0o600


def test_keeps_other_lines_comments_order_and_export_form(tmp_path):
    path = tmp_path / ".env.local"
    path.write_text(
        "# local settings\n"
        "NEXT_PUBLIC_APP_URL=http://localhost:3000\n"
        "\n"
        "export API_KEY=old  # rotated quarterly\n"
        "OTHER='kept as is'\n"
    )
    path.chmod(0o644)
    target(tmp_path).publish({"API_KEY": Secret("new"), "ADDED": Secret("x")})
    assert path.read_text() == (
        "# local settings\n"
        "NEXT_PUBLIC_APP_URL=http://localhost:3000\n"
        "\n"
        "export API_KEY=new\n"
        "OTHER='kept as is'\n"
        "ADDED=x\n"
    )
    assert mode(path) == 0o600


def test_publishing_again_changes_nothing(tmp_path):
    t = target(tmp_path)
    t.publish({"A": Secret("1 2")})
    first = (tmp_path / ".env.local").read_text()
    t.publish({"A": Secret("1 2")})
    assert (tmp_path / ".env.local").read_text() == first


def test_a_multi_line_old_value_is_replaced_whole(tmp_path):
    path = tmp_path / ".env.local"
    path.write_text('KEY="-----BEGIN\nold secret\n-----END"\nNEXT=1\n')
    target(tmp_path).publish({"KEY": Secret("new")})
    assert path.read_text() == "KEY=new\nNEXT=1\n"


def test_every_assignment_of_a_name_is_replaced(tmp_path):
    path = tmp_path / ".env.local"
    path.write_text("A=old\nB=1\nA=older\n")
    target(tmp_path).publish({"A": Secret("new")})
    assert path.read_text() == "A=new\nB=1\nA=new\n"


def test_a_file_without_final_newline_gets_one_before_appending(tmp_path):
    path = tmp_path / ".env.local"
    path.write_text("A=1")
    target(tmp_path).publish({"B": Secret("2")})
    assert path.read_text() == "A=1\nB=2\n"


def test_crlf_line_endings_are_kept(tmp_path):
    path = tmp_path / ".env.local"
    path.write_bytes(b"A=1\r\nB=2\r\n")
    target(tmp_path).publish({"A": Secret("3")})
    assert path.read_bytes() == b"A=3\r\nB=2\r\n"


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("re_abc-123", "re_abc-123"),
        ("two words", '"two words"'),
        ('say "hi"', '"say \\"hi\\""'),
        ("a#b", '"a#b"'),
        ("it's", '"it\'s"'),
        ("$HOME", '"\\$HOME"'),
        ("back\\slash", '"back\\\\slash"'),
        ("line\nbreak", '"line\\nbreak"'),
        ("", '""'),
    ],
)
def test_values_are_quoted_safely(value, written):
    assert quote(value) == written


def _read_back(text: str) -> str:
    # The reading rules of python-dotenv for a double-quoted value, plus dotenv-expand's \$.
    assert text.startswith('"') and text.endswith('"')
    out, i, body = [], 0, text[1:-1]
    while i < len(body):
        if body[i] == "\\" and i + 1 < len(body):
            out.append({"n": "\n", "r": "\r"}.get(body[i + 1], body[i + 1]))
            i += 2
        else:
            out.append(body[i])
            i += 1
    return "".join(out)


@given(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), min_size=1))
def test_quoted_values_read_back_unchanged(value):
    written = quote(value)
    assert "\n" not in written
    if not written.startswith('"'):
        assert written == value
    else:
        assert _read_back(written) == value


def test_render_appends_in_given_order():
    assert render("", {"B": "1", "A": "2"}) == "B=1\nA=2\n"


def test_relative_path_resolves_against_base_dir_option(tmp_path):
    sub = tmp_path / "app"
    sub.mkdir()
    t = DotenvTarget(
        {"path": ".env.local", "base_dir": str(sub)}, "local", None, None, {"base_dir": "/nope"}
    )
    t.publish({"A": Secret("1")})
    assert (sub / ".env.local").read_text() == "A=1\n"
    assert t.describe() == "dotenv .env.local"


def test_a_symlinked_file_is_written_through_the_link(tmp_path):
    real = tmp_path / "real.env"
    real.write_text("A=1\n")
    (tmp_path / ".env.local").symlink_to(real)
    target(tmp_path).publish({"A": Secret("2")})
    assert (tmp_path / ".env.local").is_symlink()
    assert real.read_text() == "A=2\n"


def test_missing_directory_is_a_configuration_error(tmp_path):
    with pytest.raises(TargetConfigError, match="does not exist"):
        target(tmp_path, path="missing/.env.local").publish({"A": Secret("1")})


def test_a_bad_variable_name_is_refused(tmp_path):
    with pytest.raises(TargetError, match="cannot write variable"):
        target(tmp_path).publish({"BAD NAME": Secret("1")})


def test_a_failed_write_leaves_the_original_and_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / ".env.local"
    path.write_text("# keep me\nA=old\n")
    before = sorted(tmp_path.iterdir())

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(dotenv.os, "fsync", broken_fsync)
    with pytest.raises(TargetError) as caught:
        target(tmp_path).publish({"A": Secret("new-secret")})
    assert "No space left on device" in str(caught.value)
    assert "new-secret" not in str(caught.value)
    assert path.read_text() == "# keep me\nA=old\n"
    assert sorted(tmp_path.iterdir()) == before


def test_an_interrupted_replace_leaves_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / ".env.local"
    path.write_text("A=old\n")

    def interrupted(src: str, dst: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(dotenv.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        target(tmp_path).publish({"A": Secret("new")})
    assert path.read_text() == "A=old\n"
    assert [p.name for p in tmp_path.iterdir()] == [".env.local"]


def test_options_are_validated():
    assert DotenvTarget.validate_options({}) == [
        "path: missing; the dotenv file to write, e.g. .env.local (relative to the inventory)"
    ]
    assert DotenvTarget.validate_options({"path": "x", "base_dir": 3}) == [
        "base_dir: must be a string"
    ]
