"""The SQL database: one async engine per process, sessions, and alembic migrations."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Generic, NamedTuple, TypeVar

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session, sessionmaker

T = TypeVar("T")

PROJECT_DIR = Path(__file__).resolve().parents[2]
_READ_ONLY = "ctl_read_only"
_GROUP = 256  # write()s committed together at most (the first waits for all of them)
_LANES = 4  # PostgreSQL: groups in flight at once (see _drain_here)
_TURN_WAIT = 5.0  # s the writer waits for a write session's turn to end (as busy_timeout)
# alembic's `context` is module-global: two migrations at once would share it.
_MIGRATE_LOCK = threading.Lock()


def is_sqlite(url: str | URL) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def ensure_sqlite_dir(url: str | URL) -> None:
    u = make_url(url)
    name = u.database or ""
    if u.get_backend_name() != "sqlite" or name in ("", ":memory:"):
        return
    if not name.startswith("file:"):  # a SQLite URI (uri=true), maybe in memory: not a path
        Path(name).expanduser().parent.mkdir(parents=True, exist_ok=True)


def _sqlite_file(url: str | URL) -> bool:
    """A SQLite database in a file (not in memory): several connections share it."""
    u = make_url(url)
    name = u.database or ""
    return name not in ("", ":memory:") and "mode=memory" not in str(u) and \
        not name.startswith("file::memory:")


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # NOTE: sqlite3's legacy mode skips BEGIN before SELECT, so a read-then-write
    # transaction upgrades its lock late and fails at once with "database is locked"
    # (busy_timeout does not apply to a stale WAL snapshot). We take transaction
    # control away from the driver and emit BEGIN IMMEDIATE ourselves (_sqlite_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    for pragma in ("foreign_keys=ON", "journal_mode=WAL", "busy_timeout=5000"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    # Writers queue on the lock (up to busy_timeout) instead of failing later; SQLite
    # serialises writers anyway. Read-only sessions keep a plain BEGIN: WAL lets them
    # run beside a writer.
    if conn.get_execution_options().get(_READ_ONLY):
        conn.exec_driver_sql("BEGIN")
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        options: dict[str, Any] = {}
        if is_sqlite(url):
            ensure_sqlite_dir(url)
        else:
            options["pool_pre_ping"] = True
        self.engine: AsyncEngine = create_async_engine(url, **options)
        if is_sqlite(url):
            event.listen(self.engine.sync_engine, "connect", _sqlite_connect)
            event.listen(self.engine.sync_engine, "begin", _sqlite_begin)
        self._reader = self.engine.execution_options(**{_READ_ONLY: True})
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._readers = async_sessionmaker(self._reader, expire_on_commit=False)
        # write(): on a SQLite file, one thread with its own connection runs each
        # transaction whole; elsewhere up to _LANES tasks of the event loop do (write()).
        self._writer: ThreadPoolExecutor | None = None
        self._sync: Engine | None = None
        self._queued: deque[_Queued[Any] | _Turn] = deque()
        self._queue_lock = threading.Lock()
        self._draining = False
        self._drainers: set[asyncio.Task[None]] = set()
        # A group's works share its transaction (see _group): first plainly, then, if one
        # of them raised, each in its own SAVEPOINT; a group of one has its own.
        self._joined_sessions = sessionmaker(expire_on_commit=False,
                                             join_transaction_mode="rollback_only")
        self._sync_sessions = sessionmaker(expire_on_commit=False,
                                           join_transaction_mode="create_savepoint")
        self._solo_sessions = sessionmaker(expire_on_commit=False)
        if is_sqlite(url) and _sqlite_file(url):
            self._sync = create_engine(make_url(url).set(drivername="sqlite"),
                                       pool_size=1, max_overflow=0)
            event.listen(self._sync, "connect", _sqlite_connect)
            event.listen(self._sync, "begin", _sqlite_begin)
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="ctl-db-writer")
        self._memory = self._writer is None and is_sqlite(url)  # write(): no queue

    @asynccontextmanager
    async def session(self, *, readonly: bool = False) -> AsyncIterator[AsyncSession]:
        """A session; `readonly=True` promises no writes (lets SQLite readers run concurrently).

        On a SQLite file a writing session first takes its turn from the writer thread
        (after the writes queued before it are committed): SQLite's lock would let a
        session wait only by polling it (busy_timeout), which a busy writer thread can
        starve for seconds."""
        held = _TURN.get()
        if readonly or self._writer is None or (held is not None and not held.done.is_set()):
            async with (self._readers if readonly else self._sessions)() as s:
                yield s
            return
        turn = await self._take_turn()
        token = _TURN.set(turn)
        try:
            async with self._sessions() as s:
                yield s
        finally:
            _TURN.reset(token)
            turn.done.set()

    async def _take_turn(self) -> _Turn:
        turn = _Turn(asyncio.get_running_loop())
        self._enqueue(turn)
        try:
            await turn.granted
        except BaseException:  # gave up waiting: the writer must not wait for it
            turn.done.set()
            raise
        return turn

    def _enqueue(self, item: _Queued[Any] | _Turn) -> None:
        assert self._writer is not None
        with self._queue_lock:
            self._queued.append(item)
            idle, self._draining = not self._draining, True
        if idle:
            self._writer.submit(self._drain)

    async def write(self, work: Callable[[Session], T]) -> T:
        """`work(session)` in one write transaction, committed; returns what it returns.

        `work` is plain synchronous ORM/Core code (no awaits) and may run in another
        thread, and twice (when another work of its group raised): it must touch
        nothing but its session and read nothing but its arguments. Objects it
        returns stay loaded (no expiry on commit). When it raises, nothing it did is kept.

        NOTE: on a SQLite file it runs in this process's writer thread, the whole
        transaction in one hop. Through aiosqlite each statement is 3-4 hops between the
        event loop and aiosqlite's thread (cursor, execute, fetch, close; ~100 us of CPU
        each), and the write lock stays held while each hop waits for its turn on a busy
        loop; the hot path of a call (open and close its contact) spends most of its CPU
        there. And writes that queue up meanwhile commit together (`_group`): each commit
        waits for the disk (fsync, ~4 ms here), which alone capped SQLite at ~200
        transactions a second. Elsewhere (PostgreSQL) up to _LANES tasks of the event
        loop run the groups on the async engine (`_drain_here`).
        """
        held = _TURN.get()
        if self._memory or (held is not None and not held.done.is_set()):
            # In-memory SQLite; or inside a write session (its turn holds the writer
            # thread): beside it.
            async with self._sessions() as s, s.begin():
                return await s.run_sync(work)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if self._writer is not None:
            self._enqueue(_Queued(work, future, loop))
        else:
            self._queued.append(_Queued(work, future, loop))
            if len(self._drainers) < _LANES:
                drainer = loop.create_task(self._drain_here())
                self._drainers.add(drainer)
                drainer.add_done_callback(self._drainers.discard)
        return await future

    def _drain(self) -> None:
        """The writer thread: commit what is queued, a group at a time, and give write
        sessions their turn in their place in the queue, until nothing is left."""
        assert self._sync is not None
        while (item := self._next()) is not None:
            if isinstance(item, _Turn):
                with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits
                    item.loop.call_soon_threadsafe(_grant, item)
                item.done.wait(_TURN_WAIT)
                continue
            try:
                with self._sync.connect() as conn:
                    outcomes = self._group(conn, item)
            except BaseException as e:  # nothing of the group is committed
                outcomes = [(False, e)] * len(item)
            settled: dict[asyncio.AbstractEventLoop, list[Any]] = {}
            for q, outcome in zip(item, outcomes, strict=True):
                settled.setdefault(q.loop, []).append((q.future, *outcome))
            for loop, items in settled.items():
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(_settle, items)

    async def _drain_here(self) -> None:
        """One of the event loop's writers (PostgreSQL): what is queued, a group at a
        time, each group in one transaction on one connection.

        NOTE: a transaction per write cost a pool checkout with its ping, BEGIN and
        COMMIT each, and the loop's CPU went to those round trips: at 500 chat
        messages/s ctl fell seconds behind (bench.chat --pg). One writer alone waited
        out each statement's round trip in turn, so _LANES groups run side by side
        (what is queued while they all run waits for the next free one); the server
        orders them as it does any transactions.
        """
        while self._queued:
            group = [self._queued.popleft() for _ in range(min(_GROUP, len(self._queued)))]
            work = [q for q in group if isinstance(q, _Queued)]  # no turns here
            try:
                async with self.engine.connect() as conn:
                    outcomes = await conn.run_sync(self._group, work)
            except BaseException as e:  # nothing of the group is committed
                if not isinstance(e, Exception):  # cancelled (shutting down)
                    for q in work:
                        q.future.cancel()
                    raise
                outcomes = [(False, e)] * len(work)
            _settle([(q.future, *outcome) for q, outcome in zip(work, outcomes, strict=True)])

    def _next(self) -> _Turn | list[_Queued[Any]] | None:
        """The next turn, or the writes queued before it (at most _GROUP); None: idle."""
        with self._queue_lock:
            if not self._queued:
                self._draining = False
                return None
            group: list[_Queued[Any]] = []
            while self._queued and len(group) < _GROUP:
                item = self._queued.popleft()
                if isinstance(item, _Queued):
                    group.append(item)
                elif group:  # the writes before it first
                    self._queued.appendleft(item)
                    break
                else:
                    return item
            return group

    def _group(self, conn: Connection, group: list[_Queued[Any]]) -> list[tuple[bool, Any]]:
        """The group's works in one transaction on `conn`: a work that raises undoes only
        its own part; the others commit. A waiter hears its result only once the COMMIT
        is done, and if the COMMIT fails every waiter gets the error."""
        if len(group) == 1:
            # Alone, its transaction is its own: a SAVEPOINT and its RELEASE are two
            # statements more, and at a call's pace (100 calls/s, each transaction ~1 ms)
            # most groups are of one.
            return [_run(group[0], self._solo_sessions, bind=conn)]
        # NOTE: works rarely raise, and a SAVEPOINT with its RELEASE around each one was
        # a fifth of the writer's time at 300 chat messages/s. So the group runs plainly
        # first; only when a work raises is all of it rolled back and run again, each
        # work in its own SAVEPOINT (works touch nothing but their session: see write()).
        together = self._together(conn, group)
        if together is not None:
            return together
        outcomes: list[tuple[bool, Any]] = []
        with conn.begin():
            for q in group:
                outcomes.append(_run(q, self._sync_sessions, bind=conn))
                if not outcomes[-1][0] and _rolled_back(conn):
                    # SQLite rolled back the whole transaction (disk full, I/O error):
                    # the works before this one are gone too.
                    raise outcomes[-1][1]
        return outcomes

    def _together(self, conn: Connection, group: list[_Queued[Any]]
                  ) -> list[tuple[bool, Any]] | None:
        """The group in one plain transaction, committed; None (nothing kept) if a work
        raised."""
        outcomes: list[tuple[bool, Any]] = []
        tx = conn.begin()
        try:
            for q in group:
                if q.future.cancelled():  # its caller gave up before it ran
                    outcomes.append((False, asyncio.CancelledError()))
                    continue
                outcomes.append(_run(q, self._joined_sessions, bind=conn))
                if not outcomes[-1][0]:  # its session rolled back the whole group
                    return None
            tx.commit()
        finally:
            if tx.is_active:
                tx.rollback()
        return outcomes

    async def ping(self) -> None:
        async with self._reader.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def close(self) -> None:
        if self._drainers:  # what is queued is committed first
            await asyncio.wait(self._drainers)
        await self.engine.dispose()
        if self._writer is not None and self._sync is not None:
            # The writer's sqlite3 connection may only be closed by its own thread.
            await asyncio.get_running_loop().run_in_executor(self._writer, self._sync.dispose)
            self._writer.shutdown()


class _Turn:
    """A write session's turn: the writer thread waits while the session writes."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.granted: asyncio.Future[None] = loop.create_future()
        self.done = threading.Event()


def _grant(turn: _Turn) -> None:
    if turn.granted.done():  # its session gave up waiting
        turn.done.set()
    else:
        turn.granted.set_result(None)


# The turn the current task's write session holds: its write()s must not queue behind it.
_TURN: ContextVar[_Turn | None] = ContextVar("ctl_db_turn", default=None)


class _Queued(NamedTuple, Generic[T]):
    work: Callable[[Session], T]
    future: asyncio.Future[T]
    loop: asyncio.AbstractEventLoop


def _run(q: _Queued[Any], sessions: sessionmaker[Session], **bind: Any) -> tuple[bool, Any]:
    """(True, what q's work returned) or (False, what it raised), in its own session's
    transaction (a SAVEPOINT when `bind` is a group's connection)."""
    if q.future.cancelled():  # its caller gave up before it ran
        return False, asyncio.CancelledError()
    try:
        with sessions(**bind) as s, s.begin():
            return True, q.work(s)
    except Exception as e:
        return False, e


def _rolled_back(conn: Connection) -> bool:
    """Whether SQLite itself ended the transaction (PostgreSQL keeps it, aborted)."""
    dbapi = conn.connection.dbapi_connection
    return conn.dialect.name == "sqlite" and not dbapi.in_transaction  # type: ignore[union-attr]


def _settle(items: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for future, ok, value in items:
        if future.done():  # cancelled while its work ran: the work still counts
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


def migrate(url: str, revision: str = "head") -> None:
    """Upgrade the database at `url` to the newest schema, or to `revision` (blocking;
    safe in any thread)."""
    from alembic import command
    from alembic.config import Config

    ensure_sqlite_dir(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(PROJECT_DIR / "migrations"))
    cfg.set_main_option("path_separator", "os")
    # Passed as an attribute, not a main option: ini interpolation would mangle a "%"
    # in a percent-encoded password.
    cfg.attributes["url"] = url
    with _MIGRATE_LOCK:
        command.upgrade(cfg, revision)
