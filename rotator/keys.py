"""Create, load and guard the tool's own keys: master, audit signing, fingerprint.

Key files are 0600 and refused when readable by others, as certbot refuses credential
files: a master key others can read protects nothing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets as _random
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rotator.errors import KeyMaterialError, UnsafePathError
from rotator.paths import keys_dir

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

MASTER_FILE = "master.key"
AUDIT_FILE = "audit-ed25519.pem"
AUDIT_PUBLIC_FILE = "audit-ed25519.pub.pem"
FINGERPRINT_FILE = "fingerprint.key"


@dataclass(frozen=True)
class MasterKey:
    """A 256-bit AES key and the short id stored beside every value it encrypts."""

    material: bytes

    @property
    def key_id(self) -> str:
        return hashlib.sha256(b"rotator-master-key-id\x00" + self.material).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"MasterKey(key_id={self.key_id!r})"


def _decode_master(text: str, source: str) -> MasterKey:
    try:
        material = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise KeyMaterialError(
            f"the master key from {source} is not base64; expected 32 bytes in base64 "
            "(as written by `rotate init`)"
        ) from None
    if len(material) != 32:
        raise KeyMaterialError(
            f"the master key from {source} is {len(material)} bytes; expected 32 (AES-256)"
        )
    return MasterKey(material)


def check_private(path: Path) -> None:
    """Refuse a key file that others can read or write, or that another user owns."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise KeyMaterialError(
            f"key file {path} not found; run `rotate init` or point at the right file"
        ) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyMaterialError(
            f"key file {path} is readable by others (mode {stat.S_IMODE(mode):04o}); "
            f"run `chmod 600 {path}` and try again"
        )
    # A 0600 file of another user is theirs to change: a planted key set would be used.
    owner, uid = path.stat().st_uid, os.geteuid()
    if owner != uid:
        raise UnsafePathError(
            f"key file {path} is owned by uid {owner}, not by this user (uid {uid}); "
            "another user could have put it there. Check where it came from, then "
            f"`chown {uid} {path}` or restore your own key"
        )


def read_private(path: Path) -> bytes:
    check_private(path)
    return path.read_bytes()


def load_master_key(path: Path | None = None) -> MasterKey:
    """Load the master key from `ROTATOR_MASTER_KEY`, `ROTATOR_MASTER_KEY_FILE` or the keys dir."""
    if path is not None:
        return _decode_master(read_private(path).decode("ascii", "replace"), str(path))
    inline = os.environ.get("ROTATOR_MASTER_KEY")
    if inline:
        return _decode_master(inline, "ROTATOR_MASTER_KEY")
    file = os.environ.get("ROTATOR_MASTER_KEY_FILE")
    target = Path(file).expanduser() if file else keys_dir() / MASTER_FILE
    if not target.exists():
        raise KeyMaterialError(
            f"no master key: {target} does not exist and ROTATOR_MASTER_KEY is not set; "
            "run `rotate init` on a new installation, or provide the key this database uses"
        )
    return _decode_master(read_private(target).decode("ascii", "replace"), str(target))


def load_fingerprint_key() -> bytes:
    path = keys_dir() / FINGERPRINT_FILE
    if not path.exists():
        raise KeyMaterialError(f"no fingerprint key at {path}; run `rotate init`")
    try:
        return base64.b64decode(read_private(path).strip(), validate=True)
    except (binascii.Error, ValueError):
        raise KeyMaterialError(f"the fingerprint key {path} is not base64") from None


def load_audit_key() -> Ed25519PrivateKey:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    path = keys_dir() / AUDIT_FILE
    if not path.exists():
        raise KeyMaterialError(f"no audit signing key at {path}; run `rotate init`")
    key = load_pem_private_key(read_private(path), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyMaterialError(f"{path} is not an Ed25519 private key")
    return key


def load_audit_public_key(path: Path | None = None) -> Ed25519PublicKey:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    target = path or keys_dir() / AUDIT_PUBLIC_FILE
    try:
        key = load_pem_public_key(target.read_bytes())
    except FileNotFoundError:
        raise KeyMaterialError(f"no audit public key at {target}") from None
    except ValueError:
        raise KeyMaterialError(f"{target} is not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyMaterialError(f"{target} is not an Ed25519 public key")
    return key


def _write_new(path: Path, data: bytes, mode: int = 0o600) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def new_master_key_text() -> str:
    return base64.b64encode(_random.token_bytes(32)).decode("ascii")


def init_keys(directory: Path | None = None) -> list[Path]:
    """Write a new master key, audit signing key pair and fingerprint key; never overwrite.

    The four files are written into a new directory beside `keys/` and renamed into place
    at once, so an interrupted `rotate init` leaves either no key set or a whole one.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from rotator.safefile import ensure_private_dir

    target = directory or keys_dir()
    names = (MASTER_FILE, AUDIT_FILE, AUDIT_PUBLIC_FILE, FINGERPRINT_FILE)
    existing = [target / n for n in names if (target / n).exists()]
    if existing and len(existing) < len(names):
        missing = [str(target / n) for n in names if not (target / n).exists()]
        raise KeyMaterialError(
            f"an earlier `rotate init` stopped part-way: {', '.join(map(str, existing))} "
            f"exist but {', '.join(missing)} do not. On a new installation (nothing stored "
            f"yet) move it aside and start again: `mv {target} {target}.partial && rotate "
            "init`; otherwise restore the whole key set from your backup"
        )
    if existing:
        raise KeyMaterialError(
            f"refusing to overwrite existing key file(s): {', '.join(map(str, existing))}; "
            "losing a master key makes every stored value unreadable"
        )
    ensure_private_dir(target.parent)
    staging = ensure_private_dir(target.parent / f".{target.name}.new-{os.getpid()}")
    audit = Ed25519PrivateKey.generate()
    private_pem = audit.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = audit.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _write_new(staging / MASTER_FILE, (new_master_key_text() + "\n").encode())
    _write_new(staging / AUDIT_FILE, private_pem)
    _write_new(staging / AUDIT_PUBLIC_FILE, public_pem, 0o644)
    _write_new(staging / FINGERPRINT_FILE, base64.b64encode(_random.token_bytes(32)) + b"\n")
    # rename(2) replaces an empty directory, and fails on a non-empty one: never overwrites.
    try:
        os.rename(staging, target)
    except OSError:
        # keys/ holds other files: move the four in (link, so an existing one is kept).
        for name in names:
            os.link(staging / name, target / name)
        for name in names:
            os.unlink(staging / name)
        os.rmdir(staging)
    return [target / n for n in names]


AUDIT_MAC_FILE = "audit-mac.key"


def load_audit_mac_key(directory: Path | None = None) -> bytes:
    """Return the audit MAC key (32 bytes), creating it 0600 beside the other keys if absent.

    It authenticates each audit entry (DESIGN §4.12): it lives with the key files and
    never in the database, so a database writer cannot make an entry the tool accepts.
    Created on first use rather than by `rotate init`, so installations made before it
    existed gain one without a step of their own.
    """
    path = (directory or keys_dir()) / AUDIT_MAC_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Written aside and linked into place, so a racing process never reads it half-written.
        spare = path.with_name(f".{AUDIT_MAC_FILE}.{os.getpid()}.{_random.token_hex(4)}")
        _write_new(spare, base64.b64encode(_random.token_bytes(32)) + b"\n")
        try:
            os.link(spare, path)
        except FileExistsError:
            pass  # another process created it first; read theirs
        finally:
            spare.unlink()
    try:
        material = base64.b64decode(read_private(path).strip(), validate=True)
    except (binascii.Error, ValueError):
        raise KeyMaterialError(f"the audit MAC key {path} is not base64") from None
    if len(material) != 32:
        raise KeyMaterialError(f"the audit MAC key {path} is {len(material)} bytes; expected 32")
    return material
