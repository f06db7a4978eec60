"""Key files are private and never overwritten; values are bound to their row."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from rotator.errors import KeyMaterialError
from rotator.keys import MASTER_FILE, init_keys, load_master_key
from rotator.secret import Secret
from rotator.vault import associated_data, decrypt, encrypt


def test_init_writes_0600_files_and_refuses_to_overwrite(state_dir: Path) -> None:
    written = init_keys()
    for path in written:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o644 if path.name.endswith(".pub.pem") else 0o600), (path, oct(mode))
    with pytest.raises(KeyMaterialError, match="refusing to overwrite"):
        init_keys()


def test_key_file_readable_by_others_is_refused(keys: Path) -> None:
    os.chmod(keys / MASTER_FILE, 0o644)
    with pytest.raises(KeyMaterialError, match=r"readable by others.*chmod 600"):
        load_master_key()


def test_missing_and_malformed_master_key(state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(KeyMaterialError, match="rotate init"):
        load_master_key()
    monkeypatch.setenv("ROTATOR_MASTER_KEY", "not base64!")
    with pytest.raises(KeyMaterialError, match="not base64"):
        load_master_key()
    monkeypatch.setenv("ROTATOR_MASTER_KEY", "c2hvcnQ=")
    with pytest.raises(KeyMaterialError, match="expected 32"):
        load_master_key()


def test_ciphertext_is_bound_to_its_secret(keys: Path) -> None:
    key = load_master_key()
    aad = associated_data("RESEND", "shared", "v1")
    blob = encrypt(key, Secret("re_canary"), aad)
    assert b"re_canary" not in blob
    assert decrypt(key, blob, aad, stored_key_id=key.key_id, what="x").reveal() == "re_canary"
    with pytest.raises(KeyMaterialError, match="altered or moved"):
        decrypt(
            key, blob, associated_data("STRIPE", "shared", "v1"), stored_key_id=key.key_id, what="x"
        )


def test_wrong_key_names_both_key_ids(
    keys: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = load_master_key()
    aad = associated_data("A", "shared", "v")
    blob = encrypt(key, Secret("x"), aad)
    other_dir = tmp_path / "other"
    init_keys(other_dir)
    monkeypatch.setenv("ROTATOR_MASTER_KEY_FILE", str(other_dir / MASTER_FILE))
    other = load_master_key()
    with pytest.raises(KeyMaterialError) as caught:
        decrypt(other, blob, aad, stored_key_id=key.key_id, what="the value")
    assert key.key_id in str(caught.value) and other.key_id in str(caught.value)
    assert "rewrap" in str(caught.value)
