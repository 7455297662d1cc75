"""Routing: where a contact waits and who holds it; agents' routing profile and web login.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.String(32)
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("contacts") as t:  # batch: SQLite cannot add a foreign key
        # The contact's place in its queue, kept across restarts (priority, then this).
        t.add_column(sa.Column("enqueued_at", TS, nullable=True))
        t.add_column(sa.Column("agent_id", ID, nullable=True))
        t.create_foreign_key("fk_contacts_agent_id_agents", "agents", ["agent_id"], ["id"],
                             ondelete="SET NULL")
        t.create_index("ix_contacts_agent_id", ["agent_id"])
    with op.batch_alter_table("agents") as t:
        t.add_column(sa.Column("tier", sa.Integer(), nullable=False, server_default="1"))
        t.add_column(sa.Column("profile", sa.JSON(), nullable=False, server_default="[]"))
        t.add_column(sa.Column("voice_exclusive", sa.Boolean(), nullable=False,
                               server_default=sa.true()))
        t.add_column(sa.Column("state_reason", sa.String(64), nullable=True))
        t.add_column(sa.Column("password_hash", sa.String(200), nullable=True))
        t.add_column(sa.Column("role", sa.String(16), nullable=False, server_default="agent"))
    op.create_table(
        "agent_sessions",
        sa.Column("id", sa.String(64), nullable=False),  # sha256 of the bearer token
        sa.Column("agent_id", ID, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_agent_sessions"),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"],
                                name="fk_agent_sessions_agent_id_agents", ondelete="CASCADE"),
    )
    op.create_index("ix_agent_sessions_agent_id", "agent_sessions", ["agent_id"])


def downgrade() -> None:
    op.drop_table("agent_sessions")
    with op.batch_alter_table("agents") as t:
        for column in ("role", "password_hash", "state_reason", "voice_exclusive", "profile",
                       "tier"):
            t.drop_column(column)
    with op.batch_alter_table("contacts") as t:
        t.drop_index("ix_contacts_agent_id")
        t.drop_constraint("fk_contacts_agent_id_agents", type_="foreignkey")
        t.drop_column("agent_id")
        t.drop_column("enqueued_at")
