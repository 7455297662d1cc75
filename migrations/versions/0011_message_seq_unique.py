"""A message's seq is unique within its contact (issue #6).

Two controllers on PostgreSQL could store two messages of one conversation with the same
seq (both took the last one + 1 at once), and a client reading "messages after seq N"
then missed one of them. Existing duplicates are renumbered in their stored order first.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Only contacts that have a duplicate are renumbered: every other seq a client holds stays.
_RENUMBER = """
UPDATE messages SET seq = (
    SELECT n FROM (
        SELECT id, ROW_NUMBER() OVER (PARTITION BY contact_id
                                      ORDER BY seq, created_at, id) AS n
        FROM messages AS m WHERE m.contact_id = messages.contact_id
    ) AS numbered WHERE numbered.id = messages.id)
WHERE contact_id IN (SELECT contact_id FROM messages WHERE contact_id IS NOT NULL
                     GROUP BY contact_id, seq HAVING COUNT(*) > 1)
"""


def upgrade() -> None:
    op.execute(_RENUMBER)
    op.drop_index("ix_messages_contact_id_seq", table_name="messages")
    op.create_index("uq_messages_contact_id_seq", "messages", ["contact_id", "seq"],
                    unique=True)


def downgrade() -> None:
    op.drop_index("uq_messages_contact_id_seq", table_name="messages")
    op.create_index("ix_messages_contact_id_seq", "messages", ["contact_id", "seq"])
