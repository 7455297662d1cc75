"""The composition root: every service of one controller process, started and stopped."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiohttp import web

from adapters.api.keys import ApiKeys
from adapters.api.service import ApiChannel
from adapters.api.webhook import WebhookSender
from adapters.chat.service import ChatService
from adapters.douyin.api import DouyinApi
from adapters.douyin.webhook import DouyinWebhook
from adapters.email.adapter import EmailAdapter
from adapters.sms.gateway import SmsGateway
from adapters.sms.webhook import SmsWebhook
from adapters.wechat.api import WechatApi
from adapters.wechat.callback import WechatCallback
from adapters.weibo.api import WeiboApi
from adapters.weibo.callback import WeiboPush
from ctl.agents.auth import AuthService
from ctl.agents.lockout import Lockout
from ctl.agents.phone import Phones
from ctl.agents.service import AgentService
from ctl.asterisk.secrets import Secrets
from ctl.channels.attachments import AttachmentStore
from ctl.channels.limits import Limiter
from ctl.channels.outbound import Outbound
from ctl.channels.service import ChannelService
from ctl.contacts.service import ContactService
from ctl.contacts.states import ContactState
from ctl.customers.records import CustomerRecords
from ctl.customers.service import CustomerService
from ctl.errors import BadRequest, CtlError
from ctl.ivr import builtin
from ctl.ivr.live import Ivr
from ctl.knowledge.service import Knowledge
from ctl.routing.client import RemoteRouting, Routing, handle
from ctl.routing.cluster import Cluster
from ctl.routing.notifier import Notifier
from ctl.routing.service import RoutingService
from ctl.settings import Settings
from ctl.speech import build as speech
from ctl.speech.insights import Insights
from ctl.store.db import Database, migrate
from ctl.store.live import LiveState, make_live
from ctl.supervision import client as supervision
from ctl.supervision.monitor import Monitors
from ctl.supervision.service import SupervisionService
from ctl.telephony.ami import AmiClient
from ctl.telephony.ari import AriClient
from ctl.telephony.callbacks import Callbacks
from ctl.telephony.calls import CallManager
from ctl.telephony.events import EventStream
from ctl.telephony.queueing import VoiceQueues
from ctl.tickets import wiring as tickets

log = logging.getLogger(__name__)


class Services:
    def __init__(self, settings: Settings, secrets: Secrets) -> None:
        self.settings = settings
        ast = settings.asterisk
        self.db = Database(settings.db_url)
        self.live: LiveState = make_live(settings.redis_url)
        self.contacts = ContactService(self.db)
        self.customers = CustomerService(self.db)
        self.customer_records = CustomerRecords(self.db, settings.crm, settings.recordings_dir,
                                                settings.default_region)
        self.agents = AgentService(self.db)
        self.phones = Phones(self.db, ast, secrets.webrtc_key)
        self.notifier = Notifier()
        # With Redis, several controllers share the work and one of them leads (routing,
        # ARI); without it this process is the only one and always leads.
        self.cluster = Cluster(settings.redis_url, settings.node_id) \
            if settings.redis_url else None
        self.core = RoutingService(self.db, settings.routing, self.notifier,
                                   publish=self.cluster.publisher() if self.cluster else None)
        self.leading = False
        self.routing: Routing = RemoteRouting(
            self.cluster, lambda: self.core if self.leading else None) \
            if self.cluster else self.core
        self.auth = AuthService(self.db, settings.routing.session_hours, secrets.csrf_key,
                                Lockout(self.db, settings.desk.lockout_after,
                                        settings.desk.lockout_for))
        self.ari = AriClient(ast.ari_url or f"http://127.0.0.1:{ast.http_port}", "ctl",
                             secrets.ari_password, ast.app)
        self.calls = CallManager(
            self.ari, self.contacts, self.live,
            flows={"demo": builtin.demo(settings.demo_prompt)},
            node=settings.node_id, region=settings.default_region,
        )
        self.voice = VoiceQueues(self.ari, self.core, self.db, self.calls,
                                 settings.routing.announce_every)
        self.callbacks = Callbacks(self.voice, self.calls, self.db, settings)
        self.core_supervision = SupervisionService(self.core, Monitors(
            self.ari, self.calls, self.voice, self.core, self.contacts, self.core.publish,
            self.voice._endpoint), self.core.publish)
        self.supervision: supervision.Supervision = \
            supervision.RemoteSupervision(self.cluster) if self.cluster else self.core_supervision
        for q in settings.routing.queues:
            self.calls.flows[f"queue-{q.name}"] = builtin.queue(q.name, self.voice)
        self.ivr = Ivr(self)  # published YAML flows, for calls whose flow is not built in
        self.calls.resolve = self.ivr.resolve
        self.events = EventStream(self.ari, self.calls.dispatch, on_connect=self.calls.resync)
        self.ami = AmiClient("127.0.0.1", ast.ami_port, "ctl", secrets.ami_secret)
        ch = settings.channels  # digital channels: the outbound registry other services use
        self.outbound = Outbound(self.db, Limiter(ch.rate_per_minute, ch.rate_burst),
                                 ch.send_timeout)
        self.channels = ChannelService(
            self.db, self.customers, self.contacts, self.routing, self.outbound,
            AttachmentStore(settings.data_dir / "attachments", ch.max_attachment_bytes,
                            ch.attachment_types),
            ch, self.core.publish, settings.node_id, region=settings.default_region)
        self.email = EmailAdapter(ch.email, self.channels)
        self.tickets, self.ticket_rules = tickets.build(self.db, settings, self.intake,
                                                        self.routing.end, self.outbound)
        self.core.listeners.append(self.ticket_rules.on_routing)  # assignee follows the task
        self.channels.on_thread_reply = self.tickets.reply_in_thread  # answers reopen tickets
        self._sla: asyncio.Task[None] | None = None  # the leader watches SLA clocks
        self.knowledge = Knowledge(self.db)  # quick replies and articles for the desk
        self.chat = ChatService(self.channels, self.contacts, self.routing, self.db,
                                secrets.session_key, settings.default_region)
        self.core.listeners.append(self.channels.on_routing)  # chat visitors see their state
        self.sms = SmsGateway(ch.sms, settings.default_region)
        if ch.sms.send_url:
            self.outbound.register("sms", self.sms)
        self.sms_webhook = SmsWebhook(self.channels, ch.sms.secret, ch.sms.max_skew) \
            if ch.sms.secret else None
        self.wechat = WechatApi(ch.wechat, live=self.live)
        if ch.wechat.app_id and ch.wechat.app_secret:
            self.outbound.register("wechat", self.wechat)
        self.wechat_callback = WechatCallback(
            self.channels, ch.wechat, max_bytes=ch.max_attachment_bytes,
            media=self.wechat if ch.wechat.app_id and ch.wechat.app_secret else None) \
            if ch.wechat.token else None
        self.weibo = WeiboApi(ch.weibo)
        if ch.weibo.access_token:
            self.outbound.register("weibo", self.weibo)
        self.weibo_push = WeiboPush(
            self.channels, ch.weibo, max_bytes=ch.max_attachment_bytes,
            media=self.weibo if ch.weibo.access_token else None) if ch.weibo.app_secret else None
        self.douyin = DouyinApi(ch.douyin, self.live)
        if ch.douyin.open_id and ch.douyin.access_token:
            self.outbound.register("douyin", self.douyin)
        self.douyin_webhook = DouyinWebhook(
            self.channels, ch.douyin, self.douyin, ch.max_attachment_bytes) \
            if ch.douyin.client_secret else None
        self.api_keys = ApiKeys(self.db)  # third-party platforms: the API channel
        self.api_channel = ApiChannel(self.channels)
        self.api_webhook = WebhookSender(self.api_keys)
        self.outbound.register("api", self.api_webhook)
        self.tts = speech.tts(settings)
        self.recognizer = speech.recognizer(settings, secrets)
        self.transcripts = speech.transcriber(settings, self.db, self.contacts)  # leader's
        # Intent and sentiment of customers' texts, where they arrive (any node).
        self.insights = Insights(self.db, self.contacts, self.core.publish,
                                 settings.speech.intents)
        if settings.speech.insights:
            self.channels.listeners.append(self.insights.on_message)
            if self.transcripts is not None:
                self.transcripts.on_text = self.insights.on_text
        self._heartbeat: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._serving: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await asyncio.to_thread(migrate, self.settings.db_url)
        await self.db.ping()
        await self.live.ping()
        self.ami.start()
        if self.cluster is None:
            await self._lead()
        else:
            await self._round(self.cluster)  # lead at once if nobody does
            self._tasks = [asyncio.create_task(self.cluster.relay(self.notifier)),
                           asyncio.create_task(self._campaign(self.cluster))]
        self._heartbeat = asyncio.create_task(self._beat())
        await self.email.start()

    async def _lead(self) -> None:
        await self.core.start()
        await self.callbacks.restore()
        await self.ivr.start()
        self.events.start()
        self.core_supervision.check()  # alerts for the contacts the rebuild found waiting
        self._sla = asyncio.create_task(self.ticket_rules.run())
        if self.settings.knowledge_demo:
            await self.knowledge.seed_demo()  # into an empty knowledge base only
        if self.transcripts is not None:
            self.transcripts.start()
        if self.settings.speech.insights:
            try:  # open contacts' messages a stopped process had queued but not analysed
                await self.insights.catch_up()
            except Exception:
                log.exception("catching up on messages' intent and sentiment failed")
        self.leading = True

    async def _follow(self) -> None:
        self.leading = False
        if self._sla is not None:
            self._sla.cancel()
        await self.events.stop()
        if self.transcripts is not None:
            await self.transcripts.stop()
        await self.core_supervision.stop()  # supervisors' phones hung up
        await self.calls.stop()  # calls stay in Stasis: the next leader adopts them
        await self.ivr.stop()
        await self.core.stop()

    async def _campaign(self, cluster: Cluster) -> None:
        try:
            while True:
                await asyncio.sleep(cluster.ttl / 3)
                await self._round(cluster)
        finally:
            if self._serving is not None:
                self._serving.cancel()

    async def _round(self, cluster: Cluster) -> None:
        """Hold or seek the lease; lead while holding it, step down the moment it is lost."""
        try:
            leader = await cluster.hold()
        except Exception as e:  # Redis unreachable: a leader cannot know it still is one
            log.warning("routing lease: %s", e)
            leader = cluster.leader = False
        if leader and not self.leading:
            log.info("leading routing and telephony (epoch %d)", cluster.epoch)
            await self._lead()
            self._serving = asyncio.create_task(
                cluster.serve(self._command))
        elif not leader and self.leading:
            log.warning("routing lease lost: stepping down")
            if self._serving is not None:
                self._serving.cancel()
            await self._follow()

    async def _command(self, op: str, args: dict[str, Any]) -> Any:
        """As leader: an operation another node asked for."""
        if op.startswith(supervision.PREFIX):
            return await supervision.handle(self.core_supervision,
                                            op.removeprefix(supervision.PREFIX), args)
        return await handle(self.core, op, args)

    async def _beat(self, every: float = 5.0) -> None:
        """Tell the other controllers sharing Redis that this node is alive."""
        while True:
            try:
                await self.live.heartbeat(self.settings.node_id, every * 3)
            except Exception as e:
                log.warning("heartbeat failed: %s", e)
            await asyncio.sleep(every)

    async def stop(self) -> None:
        await self.email.stop()
        await self.sms.close()
        await self.wechat.close()
        await self.customer_records.close()
        await self.weibo.close()
        await self.douyin.close()
        await self.api_webhook.close()
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._follow()
        if self.cluster is not None:
            await self.cluster.close()
        await self.ami.close()
        await self.tts.close()
        await self.recognizer.close()
        await self.insights.stop()
        await self.ari.close()
        await self.live.close()
        await self.db.close()

    async def _leader(self) -> str | None:
        if self.cluster is None:
            return self.settings.node_id
        try:
            return await self.cluster.holder()
        except Exception:
            return None

    async def intake(self, channel: str, queue: str, priority: int = 0,
                     attributes: dict[str, Any] | None = None,
                     identity: dict[str, Any] | None = None, *,
                     customer_id: str | None = None) -> str:
        """A contact handed in whole (API channel, adapters, tickets): stored, then routed."""
        if identity:
            kind, value = identity.get("kind"), identity.get("value")
            if not isinstance(kind, str) or not isinstance(value, str):
                raise BadRequest("customer must be {\"kind\": ..., \"value\": ...}")
            customer_id = await self.customers.identify(kind, value, identity.get("name"))
        contact = await self.contacts.open(channel, customer_id=customer_id,
                                           node=self.settings.node_id, attributes=attributes)
        try:
            await self.routing.enqueue(contact.id, queue, priority=priority)
        except CtlError as e:
            if e.status < 500:  # refused (unknown queue...); a timeout may still have landed
                await self.contacts.finish(contact.id, ContactState.CLOSED, "not_routed")
            raise
        return contact.id

    async def health(self) -> dict[str, dict[str, Any]]:
        leads = self.leading
        report: dict[str, dict[str, Any]] = {
            # Only the leader talks to ARI; a follower is healthy without it.
            "ari": {"ok": self.events.connected.is_set()} if leads else
            {"ok": True, "standby": True},
            "routing": {"ok": True, "role": "leader" if leads else "follower",
                        "leader": await self._leader()},
            "ami": {"ok": self.ami.connected},
            "db": await _check(self.db.ping()),
        }
        if self.settings.redis_url:
            report["redis"] = await _check(self.live.ping())
            if report["redis"]["ok"]:
                report["redis"]["nodes"] = await self.live.nodes()
        else:
            report["redis"] = {"ok": True, "mode": "in-process"}
        report["calls"] = {"ok": True, "active": len(self.calls.sessions)}
        report["flows"] = {"ok": True, "errors": self.ivr.registry.errors, "versions": {
            name: f.version for name, f in self.ivr.registry.current.items()}}
        return report


async def _check(probe: Any) -> dict[str, Any]:
    try:
        await asyncio.wait_for(probe, 2)
    except Exception as e:
        return {"ok": False, "error": str(e) or type(e).__name__}
    return {"ok": True}


SERVICES = web.AppKey("services", Services)

