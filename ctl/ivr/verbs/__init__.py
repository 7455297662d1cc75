"""Every verb a flow step can use, by name (one file each)."""

from __future__ import annotations

from ctl.ivr.verbs.base import Verb
from ctl.ivr.verbs.branch import Branch
from ctl.ivr.verbs.collect import Collect
from ctl.ivr.verbs.enqueue import Enqueue
from ctl.ivr.verbs.goto import Goto
from ctl.ivr.verbs.hangup import Hangup
from ctl.ivr.verbs.hours import Hours
from ctl.ivr.verbs.http import Http
from ctl.ivr.verbs.listen import Listen
from ctl.ivr.verbs.lookup_customer import LookupCustomer
from ctl.ivr.verbs.menu import Menu
from ctl.ivr.verbs.message import Message
from ctl.ivr.verbs.play import Play
from ctl.ivr.verbs.queue_status import QueueStatus
from ctl.ivr.verbs.record import Record
from ctl.ivr.verbs.say import Say
from ctl.ivr.verbs.set import Set
from ctl.ivr.verbs.subflow import Subflow
from ctl.ivr.verbs.survey import Survey
from ctl.ivr.verbs.ticket import Ticket
from ctl.ivr.verbs.transfer import Transfer

VERBS: dict[str, type[Verb]] = {v.name: v for v in (
    Say, Play, Menu, Collect, Listen, Branch, Set, Hours, Http, LookupCustomer, QueueStatus,
    Enqueue, Transfer, Record, Ticket, Message, Survey, Subflow, Goto, Hangup)}
