"""Initial schema: customers, identities, queues, contacts, contact events, agents.

Constraint names are spelled out (they follow ctl.store.models.NAMING) so that this
file keeps producing the same schema if the naming convention ever changes.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.String(32)  # uuid4 hex
TS = sa.DateTime(timezone=True)


def _id(table: str) -> list[Any]:
    return [sa.Column("id", ID, nullable=False), sa.PrimaryKeyConstraint("id", name=f"pk_{table}")]


def _fk(table: str, column: str, target: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=f"fk_{table}_{column}_{target}", ondelete=ondelete
    )


def _unique(table: str, *columns: str) -> sa.UniqueConstraint:
    return sa.UniqueConstraint(*columns, name=f"uq_{table}_{'_'.join(columns)}")


def _created() -> sa.Column[Any]:
    return sa.Column("created_at", TS, nullable=False)


def upgrade() -> None:
    op.create_table(
        "customers",
        *_id("customers"),
        sa.Column("display_name", sa.String(200), nullable=True),
        sa.Column("tier", sa.String(32), nullable=False),
        _created(),
    )
    op.create_table(
        "identities",
        *_id("identities"),
        sa.Column("customer_id", ID, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("value", sa.String(320), nullable=False),
        sa.Column("verified", sa.Boolean(), nullable=False),
        _created(),
        _fk("identities", "customer_id", "customers", "CASCADE"),
        _unique("identities", "kind", "value"),
    )
    op.create_index("ix_identities_customer_id", "identities", ["customer_id"])
    op.create_table(
        "queues",
        *_id("queues"),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        _created(),
        _unique("queues", "name"),
    )
    _contacts()
    _agents()


def _contacts() -> None:
    op.create_table(
        "contacts",
        *_id("contacts"),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("customer_id", ID, nullable=True),
        sa.Column("queue_id", ID, nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("criteria", sa.JSON(), nullable=False),
        sa.Column("external_ref", sa.String(128), nullable=True),
        sa.Column("node", sa.String(128), nullable=True),
        _created(),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("closed_at", TS, nullable=True),
        sa.Column("close_reason", sa.String(200), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),  # optimistic locking
        _fk("contacts", "customer_id", "customers", "SET NULL"),
        _fk("contacts", "queue_id", "queues", "SET NULL"),
    )
    op.create_index("ix_contacts_channel_external_ref", "contacts", ["channel", "external_ref"])
    op.create_index("ix_contacts_state", "contacts", ["state"])
    op.create_index("ix_contacts_customer_id", "contacts", ["customer_id"])
    op.create_table(
        "contact_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("contact_id", ID, nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("from_state", sa.String(16), nullable=True),
        sa.Column("to_state", sa.String(16), nullable=True),
        sa.Column("reason", sa.String(200), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_contact_events"),
        _fk("contact_events", "contact_id", "contacts", "CASCADE"),
    )
    op.create_index("ix_contact_events_contact_id_id", "contact_events", ["contact_id", "id"])


def _agents() -> None:
    op.create_table(
        "agents",
        *_id("agents"),
        sa.Column("username", sa.String(32), nullable=False),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("extension", sa.String(16), nullable=False),
        sa.Column("sip_ha1", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("skills", sa.JSON(), nullable=False),
        sa.Column("languages", sa.JSON(), nullable=False),
        sa.Column("capacity", sa.JSON(), nullable=False),
        _created(),
        _unique("agents", "username"),
        _unique("agents", "extension"),
    )


def downgrade() -> None:
    for table in ("contact_events", "contacts", "agents", "queues", "identities", "customers"):
        op.drop_table(table)
