"""Agent desktop logins: failed logins toward a lock, the agent's desk language (issue #8).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "login_failures",
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_at", TS, nullable=False),
        sa.Column("locked_until", TS, nullable=True),
        sa.PrimaryKeyConstraint("username", name="pk_login_failures"),
    )
    with op.batch_alter_table("agents") as t:
        t.add_column(sa.Column("ui_language", sa.String(8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("agents") as t:
        t.drop_column("ui_language")
    op.drop_table("login_failures")
