"""Digital channels: the messages of every conversation, in and out (issue #6).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "messages",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("contact_id", sa.String(32), nullable=True),
        sa.Column("customer_id", sa.String(32), nullable=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("direction", sa.String(3), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(320), nullable=False),
        sa.Column("author", sa.String(64), nullable=True),
        sa.Column("subject", sa.String(500), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("external_id", sa.String(500), nullable=True),
        sa.Column("thread", sa.String(128), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_reason", sa.String(500), nullable=True),
        sa.Column("attachments", sa.JSON(), nullable=False),
        sa.Column("meta", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"], ondelete="CASCADE",
                                name="fk_messages_contact_id_contacts"),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], ondelete="SET NULL",
                                name="fk_messages_customer_id_customers"),
        sa.PrimaryKeyConstraint("id", name="pk_messages"),
        sa.UniqueConstraint("channel", "external_id", name="uq_messages_channel_external_id"),
    )
    op.create_index("ix_messages_contact_id_seq", "messages", ["contact_id", "seq"])
    op.create_index("ix_messages_channel_thread", "messages", ["channel", "thread"])
    op.create_index("ix_messages_customer_id", "messages", ["customer_id"])


def downgrade() -> None:
    op.drop_table("messages")
