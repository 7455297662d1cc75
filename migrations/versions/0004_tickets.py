"""Tickets: work orders, their audit history, linked contacts and the number counter.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.String(32)
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "tickets",
        sa.Column("id", ID, nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("priority", sa.String(16), nullable=False),
        sa.Column("category", sa.String(64), nullable=True),
        sa.Column("department", sa.String(64), nullable=True),
        sa.Column("assignee_id", ID, nullable=True),
        sa.Column("customer_id", ID, nullable=True),
        sa.Column("channel", sa.String(16), nullable=True),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("task_contact_id", ID, nullable=True),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("attachments", sa.JSON(), nullable=False),
        sa.Column("notify", sa.Boolean(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("first_response_at", TS, nullable=True),
        sa.Column("resolved_at", TS, nullable=True),
        sa.Column("closed_at", TS, nullable=True),
        sa.Column("response_due", TS, nullable=True),
        sa.Column("resolution_due", TS, nullable=True),
        sa.Column("sla_state", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_tickets"),
        sa.UniqueConstraint("number", name="uq_tickets_number"),
        sa.ForeignKeyConstraint(["assignee_id"], ["agents.id"],
                                name="fk_tickets_assignee_id_agents", ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"],
                                name="fk_tickets_customer_id_customers", ondelete="SET NULL"),
    )
    op.create_index("ix_tickets_assignee_id", "tickets", ["assignee_id"])
    op.create_index("ix_tickets_status_department", "tickets", ["status", "department"])
    op.create_index("ix_tickets_customer_id_created_at", "tickets",
                    ["customer_id", "created_at"])
    op.create_index("ix_tickets_sla_state", "tickets", ["sla_state"])
    op.create_table(
        "ticket_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("ticket_id", ID, nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(64), nullable=True),
        sa.Column("public", sa.Boolean(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ticket_events"),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"],
                                name="fk_ticket_events_ticket_id_tickets", ondelete="CASCADE"),
    )
    op.create_index("ix_ticket_events_ticket_id_id", "ticket_events", ["ticket_id", "id"])
    op.create_table(
        "ticket_contacts",
        sa.Column("ticket_id", ID, nullable=False),
        sa.Column("contact_id", ID, nullable=False),
        sa.Column("linked_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("ticket_id", "contact_id", name="pk_ticket_contacts"),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"],
                                name="fk_ticket_contacts_ticket_id_tickets", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"],
                                name="fk_ticket_contacts_contact_id_contacts",
                                ondelete="CASCADE"),
    )
    op.create_index("ix_ticket_contacts_contact_id", "ticket_contacts", ["contact_id"])
    counter = op.create_table(
        "ticket_counter",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("last", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ticket_counter"),
    )
    op.bulk_insert(counter, [{"id": 1, "last": 0}])


def downgrade() -> None:
    op.drop_table("ticket_counter")
    op.drop_table("ticket_contacts")
    op.drop_table("ticket_events")
    op.drop_table("tickets")
