"""Knowledge base and quick replies (issue #8): articles, their earlier versions, their
inverted index, and reply templates.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.String(32)
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "articles",
        sa.Column("id", ID, nullable=False),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("language", sa.String(16), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("length", sa.Integer(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("updated_by", sa.String(64), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_articles"),
    )
    op.create_index("ix_articles_status_language", "articles", ["status", "language"])
    op.create_table(
        "article_versions",
        sa.Column("article_id", ID, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("updated_by", sa.String(64), nullable=True),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(["article_id"], ["articles.id"], ondelete="CASCADE",
                                name="fk_article_versions_article_id_articles"),
        sa.PrimaryKeyConstraint("article_id", "version", name="pk_article_versions"),
    )
    op.create_table(
        "article_terms",
        sa.Column("article_id", ID, nullable=False),
        sa.Column("term", sa.String(64), nullable=False),
        sa.Column("tf", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["article_id"], ["articles.id"], ondelete="CASCADE",
                                name="fk_article_terms_article_id_articles"),
        sa.PrimaryKeyConstraint("article_id", "term", name="pk_article_terms"),
    )
    op.create_index("ix_article_terms_term", "article_terms", ["term"])
    op.create_table(
        "quick_replies",
        sa.Column("id", ID, nullable=False),
        sa.Column("owner_id", ID, nullable=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("shortcut", sa.String(32), nullable=False),
        sa.Column("language", sa.String(16), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("updated_by", sa.String(64), nullable=True),
        sa.ForeignKeyConstraint(["owner_id"], ["agents.id"], ondelete="CASCADE",
                                name="fk_quick_replies_owner_id_agents"),
        sa.PrimaryKeyConstraint("id", name="pk_quick_replies"),
    )
    op.create_index("ix_quick_replies_owner_id_shortcut", "quick_replies",
                    ["owner_id", "shortcut"])


def downgrade() -> None:
    op.drop_table("quick_replies")
    op.drop_table("article_terms")
    op.drop_table("article_versions")
    op.drop_table("articles")
