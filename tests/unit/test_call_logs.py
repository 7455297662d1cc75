"""A call's log lines: written at once, or held while its session owns the contact."""

from __future__ import annotations

from typing import Any, cast

from ctl.contacts.service import ContactService, Logged
from ctl.telephony.ari import AriClient
from ctl.telephony.session import HOLD_MAX_LINES, HOLD_MAX_SECONDS, CallInfo, CallSession


class Contacts:
    """What CallSession needs of ContactService: each call is one transaction."""

    def __init__(self) -> None:
        self.transactions: list[list[tuple[str, dict[str, Any]]]] = []

    async def log(self, contact_id: str, kind: str, data: dict[str, Any]) -> None:
        self.transactions.append([(kind, data)])

    async def log_many(self, contact_id: str, events: list[Logged]) -> None:
        self.transactions.append([(kind, data) for kind, data, _ in events])


def call(contacts: Contacts) -> CallSession:
    info = CallInfo(channel_id="ch", flow="demo", did="", caller_number="", caller_name="",
                    state="Up", adopted=False, contact_id="c1")
    return CallSession(cast(AriClient, None), info, cast(ContactService, contacts))


async def test_lines_are_written_at_once_unless_held() -> None:
    contacts = Contacts()
    session = call(contacts)
    await session.log("call", {"n": 1})
    assert contacts.transactions == [[("call", {"n": 1})]]
    session.hold_logs()
    await session.log("call", {"n": 2})
    await session.log("prompt", {"n": 3})
    assert len(contacts.transactions) == 1
    held = session.take_logs()  # for the caller's own transaction (e.g. the close)
    assert [(k, d) for k, d, _ in held] == [("call", {"n": 2}), ("prompt", {"n": 3})]
    assert session.take_logs() == []
    await session.log("call", {"n": 4})  # still held
    await session.flush_logs(stop_holding=True)  # e.g. routing takes the contact over
    await session.log("call", {"n": 5})
    assert contacts.transactions[1:] == [[("call", {"n": 4})], [("call", {"n": 5})]]


async def test_held_lines_are_written_when_too_many_or_too_old() -> None:
    contacts = Contacts()
    session = call(contacts)
    session.hold_logs()
    for i in range(HOLD_MAX_LINES):
        await session.log("call", {"n": i})
    assert [len(t) for t in contacts.transactions] == [HOLD_MAX_LINES]
    await session.log("call", {"n": "a"})
    session._held_since -= HOLD_MAX_SECONDS  # as if "a" had waited that long
    await session.log("call", {"n": "b"})  # the first held line is too old: both go
    assert contacts.transactions[-1] == [("call", {"n": "a"}), ("call", {"n": "b"})]


async def test_no_contact_no_lines() -> None:
    contacts = Contacts()
    session = call(contacts)
    session.info.contact_id = None
    await session.log("call", {})
    session.hold_logs()
    await session.log("call", {})
    await session.flush_logs()
    assert contacts.transactions == []
