"""Encrypt stored values with AES-256-GCM, binding each to the secret it belongs to.

The associated data names the secret, its scope and the version id, so a ciphertext
copied onto another row fails to decrypt instead of yielding the wrong credential.
"""

from __future__ import annotations

import os

from rotator.errors import KeyMaterialError
from rotator.keys import MasterKey
from rotator.secret import Secret

NONCE_BYTES = 12


def associated_data(secret_name: str, scope_env: str, version_id: str) -> bytes:
    return f"rotator/v1\x00{secret_name}\x00{scope_env}\x00{version_id}".encode()


def encrypt(key: MasterKey, value: Secret, aad: bytes) -> bytes:
    """Return nonce || ciphertext+tag."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key.material).encrypt(nonce, value.reveal_bytes(), aad)


def decrypt(key: MasterKey, blob: bytes, aad: bytes, *, stored_key_id: str, what: str) -> Secret:
    """Decrypt a stored value; a wrong key is a clear error naming both key ids."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if stored_key_id != key.key_id:
        raise KeyMaterialError(
            f"{what} is encrypted under master key id {stored_key_id}, but the loaded master "
            f"key has id {key.key_id}; provide that key (ROTATOR_MASTER_KEY_FILE), or run "
            "`rotate keys rewrap --old-key-file FILE` with the old key to re-encrypt"
        )
    try:
        clear = AESGCM(key.material).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
    except InvalidTag:
        raise KeyMaterialError(
            f"{what} does not decrypt under master key id {key.key_id}: the row was altered "
            "or moved; it cannot be trusted"
        ) from None
    return Secret(clear.decode("utf-8"))
