"""Tables for the tool's own credentials (migration 0004).

`own_credential` holds each value the tool has held for one of its own credentials
(`[credentials]` names, such as `cloudflare_api_token`), encrypted like managed values,
with where it came from (`source`) and its provider id (`provider_ref`: a token id).
At most one row per name is `current` (a partial unique index); `pending` is created and
recorded but not switched to yet, `previous` switched away from and not yet revoked.
`own_rotation` is one rotation of one credential, its `state` the last beat recorded,
leased to the runner driving it (`claimed_by` until `claimed_until`, migration 0005).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, LargeBinary, text
from sqlmodel import Field, SQLModel

from rotator.clock import now

OWN_CURRENT_WHERE = "state = 'current'"
OWN_IN_FLIGHT_WHERE = "state NOT IN ('done', 'failed')"


class OwnCredential(SQLModel, table=True):
    __tablename__ = "own_credential"
    __table_args__ = (
        Index(
            "uq_own_credential_current",
            "name",
            unique=True,
            sqlite_where=text(OWN_CURRENT_WHERE),
            postgresql_where=text(OWN_CURRENT_WHERE),
        ),
    )

    id: str = Field(primary_key=True)
    name: str = Field(index=True)
    state: str
    source: str
    provider_ref: str | None = None
    fingerprint: str | None = None
    ciphertext: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    key_id: str
    rotation_id: str | None = None
    created_at: datetime = Field(default_factory=now)
    activated_at: datetime | None = None
    revoked_at: datetime | None = None
    notes: str = "{}"


class OwnRotation(SQLModel, table=True):
    __tablename__ = "own_rotation"
    __table_args__ = (
        Index(
            "uq_own_rotation_in_flight",
            "name",
            unique=True,
            sqlite_where=text(OWN_IN_FLIGHT_WHERE),
            postgresql_where=text(OWN_IN_FLIGHT_WHERE),
        ),
    )

    id: str = Field(primary_key=True)
    name: str = Field(index=True)
    kind: str
    state: str
    reason: str = ""
    old_id: str | None = None
    new_id: str | None = None
    started_at: datetime = Field(default_factory=now)
    finished_at: datetime | None = None
    # The runner driving it and until when (migration 0005): another host leaves it alone.
    claimed_by: str | None = None
    claimed_until: datetime | None = None
