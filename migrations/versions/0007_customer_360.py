"""Customer 360: language, tags, and manual merges with the rows each one moved.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.String(32)
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("customers") as t:  # batch: SQLite cannot add a foreign key
        t.add_column(sa.Column("language", sa.String(16), nullable=True))
        t.add_column(sa.Column("merged_into", ID, nullable=True))
        t.create_foreign_key("fk_customers_merged_into_customers", "customers",
                             ["merged_into"], ["id"], ondelete="SET NULL")
        t.create_index("ix_customers_merged_into", ["merged_into"])
    op.create_table(
        "customer_tags",
        sa.Column("customer_id", ID, nullable=False),
        sa.Column("tag", sa.String(64), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("customer_id", "tag", name="pk_customer_tags"),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], ondelete="CASCADE",
                                name="fk_customer_tags_customer_id_customers"),
    )
    op.create_table(
        "customer_merges",
        sa.Column("id", ID, nullable=False),
        sa.Column("survivor_id", ID, nullable=False),
        sa.Column("merged_id", ID, nullable=False),
        sa.Column("merged_by", sa.String(64), nullable=False),
        sa.Column("merged_at", TS, nullable=False),
        sa.Column("moved", sa.JSON(), nullable=False),
        sa.Column("undone_by", sa.String(64), nullable=True),
        sa.Column("undone_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_customer_merges"),
        sa.ForeignKeyConstraint(["survivor_id"], ["customers.id"], ondelete="CASCADE",
                                name="fk_customer_merges_survivor_id_customers"),
        sa.ForeignKeyConstraint(["merged_id"], ["customers.id"], ondelete="CASCADE",
                                name="fk_customer_merges_merged_id_customers"),
    )
    op.create_index("ix_customer_merges_survivor_id", "customer_merges", ["survivor_id"])
    op.create_index("ix_customer_merges_merged_id", "customer_merges", ["merged_id"])
    op.create_table(
        "customer_merge_rows",
        sa.Column("merge_id", ID, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("row_id", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("merge_id", "kind", "row_id", name="pk_customer_merge_rows"),
        sa.ForeignKeyConstraint(["merge_id"], ["customer_merges.id"], ondelete="CASCADE",
                                name="fk_customer_merge_rows_merge_id_customer_merges"),
    )


def downgrade() -> None:
    op.drop_table("customer_merge_rows")
    op.drop_table("customer_merges")
    op.drop_table("customer_tags")
    with op.batch_alter_table("customers") as t:
        t.drop_index("ix_customers_merged_into")
        t.drop_constraint("fk_customers_merged_into_customers", type_="foreignkey")
        t.drop_column("merged_into")
        t.drop_column("language")
