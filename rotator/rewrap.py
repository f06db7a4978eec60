"""Re-encrypt every stored value under a new master key, all or nothing."""

from __future__ import annotations

from sqlmodel import col, select

from rotator.errors import KeyMaterialError
from rotator.keys import MasterKey
from rotator.runtime import default_actor
from rotator.store.db import Store
from rotator.store.models import CredentialVersion, SecretRecord
from rotator.vault import associated_data, decrypt, encrypt


def rewrap(store: Store, old: MasterKey, new: MasterKey) -> int:
    """Decrypt each value with `old` (or `new` if already rewrapped) and encrypt with `new`.

    One transaction: a value that fails to decrypt aborts the whole rewrap, so the store is
    never left half under one key and half under another.
    """
    count = 0
    with store.write() as s:
        records = {r.id: r for r in s.exec(select(SecretRecord)).all()}
        for version in s.exec(
            select(CredentialVersion).where(col(CredentialVersion.ciphertext).is_not(None))
        ).all():
            if version.key_id == new.key_id:
                continue
            if version.key_id != old.key_id:
                raise KeyMaterialError(
                    f"version {version.id} is encrypted under master key id {version.key_id}, "
                    f"which is neither the old ({old.key_id}) nor the new ({new.key_id}) key"
                )
            record = records[version.secret_id]
            aad = associated_data(record.name, record.scope_env, version.id)
            assert version.ciphertext is not None
            value = decrypt(
                old,
                version.ciphertext,
                aad,
                stored_key_id=old.key_id,
                what=f"the stored value of {record.name} (version {version.id})",
            )
            version.ciphertext = encrypt(new, value, aad)
            version.key_id = new.key_id
            s.add(version)
            count += 1
        if count:
            from audit.trail import append

            append(
                s,
                event_type="keys.rewrapped",
                actor=default_actor(),
                details={"values": count, "from_key_id": old.key_id, "to_key_id": new.key_id},
            )
    return count


def check_key_ids(store: Store, key: MasterKey) -> int:
    """Count stored values, refusing if any is under another master key (names its id)."""
    with store.read() as s:
        ids = s.exec(
            select(CredentialVersion.key_id).where(col(CredentialVersion.ciphertext).is_not(None))
        ).all()
    others = sorted({i for i in ids if i != key.key_id and i is not None})
    if others:
        raise KeyMaterialError(
            f"{sum(1 for i in ids if i in others)} stored value(s) are encrypted under master "
            f"key id {', '.join(others)}, but the loaded master key has id {key.key_id}; "
            "provide that key (ROTATOR_MASTER_KEY_FILE), or run "
            "`rotate keys rewrap --old-key-file FILE` with the old key file"
        )
    return len(ids)
