"""ORM models: the persistent half of the shared model (see ARCHITECTURE.md).

Enumerations (channels, identity kinds, states) are plain strings in the database so a
new channel never needs a migration; the services validate them. JSON columns are not
mutation-tracked: assign a new dict/list instead of editing one in place.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    true,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

CHANNELS = frozenset({"voice", "chat", "email", "sms", "wechat", "weibo", "douyin", "api", "task"})
IDENTITY_KINDS = frozenset({
    "phone", "email", "wechat_openid", "wechat_unionid", "weibo_uid", "douyin_openid",
    "account", "device", "extension",
})

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite stores and returns naive ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: use an aware UTC datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {  # noqa: RUF012 - read by SQLAlchemy, never mutated
        datetime: UtcDateTime,
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


def _id() -> Mapped[str]:
    return mapped_column(String(32), primary_key=True, default=new_id)


def _created() -> Mapped[datetime]:
    return mapped_column(default=utcnow)


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[str] = _id()
    display_name: Mapped[str | None] = mapped_column(String(200))
    tier: Mapped[str] = mapped_column(String(32), default="standard")
    language: Mapped[str | None] = mapped_column(String(16))
    # Set when a supervisor merged this customer into another (kept for the audit trail
    # and for unmerging); everything it owned moved to that one.
    merged_into: Mapped[str | None] = mapped_column(
        ForeignKey("customers.id", ondelete="SET NULL"), index=True)
    created_at: Mapped[datetime] = _created()


class CustomerTag(Base):
    __tablename__ = "customer_tags"

    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"),
                                             primary_key=True)
    tag: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = _created()


class CustomerMerge(Base):
    """A manual merge of `merged_id` into `survivor_id`: who, when, and (in
    `customer_merge_rows`) exactly which rows moved, so an unmerge moves those back."""

    __tablename__ = "customer_merges"

    id: Mapped[str] = _id()
    survivor_id: Mapped[str] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"),
                                             index=True)
    merged_id: Mapped[str] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"),
                                           index=True)
    merged_by: Mapped[str] = mapped_column(String(64))
    merged_at: Mapped[datetime] = _created()
    moved: Mapped[dict[str, Any]] = mapped_column(default=dict)  # kind -> count
    undone_by: Mapped[str | None] = mapped_column(String(64))
    undone_at: Mapped[datetime | None]


class CustomerMergeRow(Base):
    __tablename__ = "customer_merge_rows"

    merge_id: Mapped[str] = mapped_column(ForeignKey("customer_merges.id", ondelete="CASCADE"),
                                          primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)  # identity, contact...
    row_id: Mapped[str] = mapped_column(String(64), primary_key=True)  # a tag: its name


class Identity(Base):
    __tablename__ = "identities"
    __table_args__ = (UniqueConstraint("kind", "value"),)

    id: Mapped[str] = _id()
    customer_id: Mapped[str] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(32))
    value: Mapped[str] = mapped_column(String(320))  # 320: the longest valid email address
    verified: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = _created()


class Queue(Base):
    __tablename__ = "queues"

    id: Mapped[str] = _id()
    name: Mapped[str] = mapped_column(String(64), unique=True)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = _created()


class Contact(Base):
    __tablename__ = "contacts"
    __table_args__ = (
        Index("ix_contacts_channel_external_ref", "channel", "external_ref"),
        Index("ix_contacts_state", "state"),
    )

    id: Mapped[str] = _id()
    channel: Mapped[str] = mapped_column(String(16))
    customer_id: Mapped[str | None] = mapped_column(
        ForeignKey("customers.id", ondelete="SET NULL"), index=True
    )
    queue_id: Mapped[str | None] = mapped_column(ForeignKey("queues.id", ondelete="SET NULL"))
    state: Mapped[str] = mapped_column(String(16))
    priority: Mapped[int] = mapped_column(default=0)
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    criteria: Mapped[list[Any]] = mapped_column(default=list)
    external_ref: Mapped[str | None] = mapped_column(String(128))
    node: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    closed_at: Mapped[datetime | None]
    close_reason: Mapped[str | None] = mapped_column(String(200))
    enqueued_at: Mapped[datetime | None]
    agent_id: Mapped[str | None] = mapped_column(
        ForeignKey("agents.id", ondelete="SET NULL"), index=True
    )
    version: Mapped[int] = mapped_column(Integer)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012

    def __repr__(self) -> str:
        return f"<Contact {self.id} {self.channel} {self.state} v{self.version}>"


class ContactEvent(Base):
    __tablename__ = "contact_events"
    __table_args__ = (Index("ix_contact_events_contact_id_id", "contact_id", "id"),
                      Index("ix_contact_events_kind_at", "kind", "at"))

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    contact_id: Mapped[str] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(32))
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(200))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Agent(Base):
    __tablename__ = "agents"

    id: Mapped[str] = _id()
    username: Mapped[str] = mapped_column(String(32), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    extension: Mapped[str] = mapped_column(String(16), unique=True)
    sip_ha1: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16), default="offline")
    skills: Mapped[dict[str, Any]] = mapped_column(default=dict)
    languages: Mapped[list[Any]] = mapped_column(default=list)
    capacity: Mapped[dict[str, Any]] = mapped_column(default=dict)
    tier: Mapped[int] = mapped_column(default=1, server_default="1")
    profile: Mapped[list[Any]] = mapped_column(default=list, server_default="[]")
    voice_exclusive: Mapped[bool] = mapped_column(default=True, server_default=true())
    state_reason: Mapped[str | None] = mapped_column(String(64))
    password_hash: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16), default="agent", server_default="agent")
    ui_language: Mapped[str | None] = mapped_column(String(8))  # the desk's; None: browser's
    created_at: Mapped[datetime] = _created()


class LoginFailure(Base):
    """Failed logins in a row for one username, known or not: a lock that only existing
    names could get would tell which names exist."""

    __tablename__ = "login_failures"

    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_at: Mapped[datetime]
    locked_until: Mapped[datetime | None]


class AgentSession(Base):
    """A login to the agent API: only the token's hash is kept."""

    __tablename__ = "agent_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = _created()
    expires_at: Mapped[datetime]


class ApiKey(Base):
    """A third-party platform's key to the API channel (adapters/api): only its hash is
    kept; the webhook secret signs what is sent to the platform, so it is kept as is."""

    __tablename__ = "api_keys"

    id: Mapped[str] = _id()
    name: Mapped[str] = mapped_column(String(100))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    webhook_url: Mapped[str | None] = mapped_column(String(500))
    webhook_secret: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = _created()
    revoked_at: Mapped[datetime | None]


class FlowVersion(Base):
    """A published IVR flow: its YAML exactly as validated, numbered per flow name."""

    __tablename__ = "flow_versions"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Mapped[str] = _id()
    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[int]
    sha256: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(Text)
    path: Mapped[str | None] = mapped_column(String(500))
    published_by: Mapped[str | None] = mapped_column(String(64))
    published_at: Mapped[datetime] = _created()


class Ticket(Base):
    """A work order (ctl/tickets). Status, priority, department are plain strings the
    service validates; `version` is its optimistic lock."""

    __tablename__ = "tickets"
    __table_args__ = (
        Index("ix_tickets_status_department", "status", "department"),
        Index("ix_tickets_customer_id_created_at", "customer_id", "created_at"),
        Index("ix_tickets_sla_state", "sla_state"),
    )

    id: Mapped[str] = _id()
    number: Mapped[int] = mapped_column(Integer, unique=True)
    subject: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(24))
    priority: Mapped[str] = mapped_column(String(16))
    category: Mapped[str | None] = mapped_column(String(64))
    department: Mapped[str | None] = mapped_column(String(64))
    assignee_id: Mapped[str | None] = mapped_column(
        ForeignKey("agents.id", ondelete="SET NULL"), index=True)
    customer_id: Mapped[str | None] = mapped_column(ForeignKey("customers.id",
                                                               ondelete="SET NULL"))
    channel: Mapped[str | None] = mapped_column(String(16))  # where the customer is told
    source: Mapped[str] = mapped_column(String(32))
    task_contact_id: Mapped[str | None] = mapped_column(String(32))  # routed in its department
    tags: Mapped[list[Any]] = mapped_column(default=list)
    fields: Mapped[dict[str, Any]] = mapped_column(default=dict)
    attachments: Mapped[list[Any]] = mapped_column(default=list)
    notify: Mapped[bool] = mapped_column(default=True)  # False: the customer opted out
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    first_response_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    response_due: Mapped[datetime | None]
    resolution_due: Mapped[datetime | None]
    sla_state: Mapped[str] = mapped_column(String(16), default="none")
    version: Mapped[int] = mapped_column(Integer)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012


class TicketEvent(Base):
    """The audit history: every change, note and reply, in order; `public` marks what the
    customer may see."""

    __tablename__ = "ticket_events"
    __table_args__ = (Index("ix_ticket_events_ticket_id_id", "ticket_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    ticket_id: Mapped[str] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str | None] = mapped_column(String(64))
    public: Mapped[bool] = mapped_column(default=False)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)


class TicketContact(Base):
    """Contacts (calls, chats, emails...) linked to a ticket."""

    __tablename__ = "ticket_contacts"

    ticket_id: Mapped[str] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"),
                                           primary_key=True)
    contact_id: Mapped[str] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"),
                                            primary_key=True, index=True)
    linked_at: Mapped[datetime] = _created()


class TicketCounter(Base):
    """The last ticket number given: one row, incremented under its row lock (no retries;
    on PostgreSQL in its own short transaction, so a failed creation leaves a gap)."""

    __tablename__ = "ticket_counter"

    id: Mapped[int] = mapped_column(primary_key=True)
    last: Mapped[int] = mapped_column(Integer, default=0)


class Message(Base):
    """One message of a digital conversation (chat, email, SMS...), in or out.

    `seq` orders a contact's messages (1, 2, ...; 0 outside any contact, e.g. a ticket
    notification); `external_id` is the channel's own id (Message-ID...), unique per
    channel, so a message delivered twice is stored once.
    """

    __tablename__ = "messages"
    __table_args__ = (UniqueConstraint("channel", "external_id"),
                      Index("uq_messages_contact_id_seq", "contact_id", "seq", unique=True),
                      Index("ix_messages_channel_thread", "channel", "thread"))

    id: Mapped[str] = _id()
    contact_id: Mapped[str | None] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    customer_id: Mapped[str | None] = mapped_column(
        ForeignKey("customers.id", ondelete="SET NULL"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    direction: Mapped[str] = mapped_column(String(3))  # "in" | "out"
    seq: Mapped[int] = mapped_column(default=0)
    address: Mapped[str] = mapped_column(String(320))  # the customer's side: from or to
    author: Mapped[str | None] = mapped_column(String(64))  # the agent of a reply
    subject: Mapped[str | None] = mapped_column(String(500))
    text: Mapped[str] = mapped_column(Text, default="")
    external_id: Mapped[str | None] = mapped_column(String(500))
    thread: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))  # received|queued|sent|delivered|failed
    status_reason: Mapped[str | None] = mapped_column(String(500))
    attachments: Mapped[list[Any]] = mapped_column(default=list)
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = _created()


class Article(Base):
    """A knowledge-base article (ctl/knowledge). `version` counts saves; each earlier
    version is kept in `article_versions`."""

    __tablename__ = "articles"
    __table_args__ = (Index("ix_articles_status_language", "status", "language"),)

    id: Mapped[str] = _id()
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text, default="")
    format: Mapped[str] = mapped_column(String(16), default="markdown")  # markdown | text
    language: Mapped[str] = mapped_column(String(16))
    tags: Mapped[list[Any]] = mapped_column(default=list)
    status: Mapped[str] = mapped_column(String(16), default="draft")  # draft | published
    length: Mapped[int] = mapped_column(Integer, default=0)  # indexed terms, for BM25
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer, default=1)


class ArticleVersion(Base):
    """An article as it was before a save replaced it."""

    __tablename__ = "article_versions"

    article_id: Mapped[str] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"),
                                            primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    tags: Mapped[list[Any]] = mapped_column(default=list)
    status: Mapped[str] = mapped_column(String(16))
    updated_by: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime]


class ArticleTerm(Base):
    """The inverted index of articles: how often each term occurs in one (title and tags
    weigh more; see ctl/knowledge/search.py)."""

    __tablename__ = "article_terms"
    __table_args__ = (Index("ix_article_terms_term", "term"),)

    article_id: Mapped[str] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"),
                                            primary_key=True)
    term: Mapped[str] = mapped_column(String(64), primary_key=True)
    tf: Mapped[int] = mapped_column(Integer)


class QuickReply(Base):
    """A reply template: personal (`owner_id` the agent's) or the team's (`owner_id`
    NULL). `body` may hold `{{ variables }}` (ctl/knowledge/variables.py)."""

    __tablename__ = "quick_replies"
    __table_args__ = (Index("ix_quick_replies_owner_id_shortcut", "owner_id", "shortcut"),)

    id: Mapped[str] = _id()
    owner_id: Mapped[str | None] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200))
    shortcut: Mapped[str] = mapped_column(String(32))
    language: Mapped[str] = mapped_column(String(16))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(64))
