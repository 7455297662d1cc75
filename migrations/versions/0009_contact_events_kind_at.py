"""Contact events by kind and time: supervisors' intent/sentiment summary of the last
hours, and the transcriber's look for what it already did (issue #5).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_contact_events_kind_at", "contact_events", ["kind", "at"])


def downgrade() -> None:
    op.drop_index("ix_contact_events_kind_at", table_name="contact_events")
