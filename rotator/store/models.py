"""Declare the tables: secrets, credential versions, rotations, steps, approvals, audit.

Times are stored in UTC. Values are never stored in clear: `CredentialVersion.ciphertext`
is AES-256-GCM under the master key named by `key_id` (see `rotator.vault`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, LargeBinary, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from rotator.clock import now

SHARED = "shared"
"""The environment key of a secret whose one value serves staging and production."""


class SecretRecord(SQLModel, table=True):
    """One rotatable unit: a secret in one scope (`shared`, or a single environment)."""

    __tablename__ = "secret"
    __table_args__ = (UniqueConstraint("name", "scope_env", name="uq_secret_name_scope"),)

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True)
    scope_env: str
    provider: str
    created_at: datetime = Field(default_factory=now)


class CredentialVersion(SQLModel, table=True):
    """One credential of a secret at its provider: pending, current, previous or revoked."""

    __tablename__ = "credential_version"
    __table_args__ = (Index("ix_credential_secret_state", "secret_id", "state"),)

    id: str = Field(primary_key=True)
    secret_id: int = Field(foreign_key="secret.id")
    state: str
    provider_ref: str | None = None
    fingerprint: str | None = None
    ciphertext: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    key_id: str | None = None
    rotation_id: str | None = None
    created_at: datetime = Field(default_factory=now)
    promoted_at: datetime | None = None
    revoked_at: datetime | None = None
    notes: str = "{}"


IN_FLIGHT_WHERE = "active AND state NOT IN ('planned', 'revoked')"
"""The rotations that hold a unit's one in-flight slot (see `machine.in_flight`)."""


class Rotation(SQLModel, table=True):
    """One run of a sequence (quarterly cycle or emergency) for one secret."""

    __tablename__ = "rotation"
    __table_args__ = (
        Index("ix_rotation_active_due", "active", "next_check_at"),
        Index("ix_rotation_secret", "secret_id", "active"),
        Index("uq_rotation_cycle", "secret_id", "cycle", unique=True),
        # One rotation in flight per unit, enforced by the database (DESIGN §4.11): two
        # emergencies started at the same moment cannot both be inserted.
        Index(
            "uq_rotation_in_flight",
            "secret_id",
            unique=True,
            sqlite_where=text(IN_FLIGHT_WHERE),
            postgresql_where=text(IN_FLIGHT_WHERE),
        ),
    )

    id: str = Field(primary_key=True)
    secret_id: int = Field(foreign_key="secret.id")
    kind: str
    cycle: str | None = None
    state: str
    active: bool = True
    fence: int = 0
    claimed_by: str | None = None
    claimed_until: datetime | None = None
    next_check_at: datetime | None = None
    attempts: int = 0
    last_error: str | None = None
    reason: str | None = None
    actor: str
    created_at: datetime = Field(default_factory=now)
    updated_at: datetime = Field(default_factory=now)
    finished_at: datetime | None = None
    facts: str = "{}"


class StepRecord(SQLModel, table=True):
    """The intent and the result of one side effect of a rotation."""

    __tablename__ = "step_record"
    __table_args__ = (Index("ix_step_rotation", "rotation_id", "step"),)

    id: int | None = Field(default=None, primary_key=True)
    rotation_id: str = Field(foreign_key="rotation.id")
    step: str
    status: str
    attempt: int = 1
    actor: str
    started_at: datetime = Field(default_factory=now)
    finished_at: datetime | None = None
    detail: str = "{}"


class Approval(SQLModel, table=True):
    """A human gate passed: an approval before production, or the closing security review."""

    __tablename__ = "approval"

    id: int | None = Field(default=None, primary_key=True)
    rotation_id: str = Field(foreign_key="rotation.id", index=True)
    kind: str
    actor: str
    note: str = ""
    at: datetime = Field(default_factory=now)


class AuditEvent(SQLModel, table=True):
    """One entry of the append-only, hash-chained audit trail.

    `entry` holds the canonical bytes that are hashed; the other columns are copies of
    fields inside it, kept for indexed queries only, and never trusted by verification.
    """

    __tablename__ = "audit_event"
    __table_args__ = (
        Index("ix_audit_time", "time"),
        Index("ix_audit_secret", "secret"),
        Index("ix_audit_type", "event_type"),
    )

    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    entry: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    entry_hash: str
    time: datetime
    actor: str
    secret: str | None = None
    environment: str | None = None
    rotation_id: str | None = None
    event_type: str


class AuditCheckpoint(SQLModel, table=True):
    """A signed statement of the trail's size and head hash, chained to the previous one."""

    __tablename__ = "audit_checkpoint"

    id: int | None = Field(default=None, primary_key=True)
    size: int
    head_hash: str
    body: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = Field(default_factory=now)


class Meta(SQLModel, table=True):
    """Small facts about the database itself (its origin id, the audit key id)."""

    __tablename__ = "meta"

    key: str = Field(primary_key=True)
    value: str


class NotificationLog(SQLModel, table=True):
    """What was sent to whom, so a pending action is reminded once a day, not every run."""

    __tablename__ = "notification_log"
    __table_args__ = (Index("ix_notification_key", "dedupe_key", "day"),)

    id: int | None = Field(default=None, primary_key=True)
    dedupe_key: str
    day: str
    channel: str
    ok: bool
    error: str | None = None
    at: datetime = Field(default_factory=now)


class Deployment(SQLModel, table=True):
    """What one target of one environment may serve for one unit: the versions it holds.

    Written before a publish (the new version joins the set: it may be served from now
    on) and after it (the set becomes exactly that version), so a crash or a failed
    publish leaves both versions listed. A credential is never revoked while any set
    holds it. No row means the target serves the unit's current value (as imported).
    """

    __tablename__ = "deployment"

    secret_id: int = Field(foreign_key="secret.id", primary_key=True)
    environment: str = Field(primary_key=True)
    target: str = Field(primary_key=True)
    serving: str = "[]"
    updated_at: datetime = Field(default_factory=now)
