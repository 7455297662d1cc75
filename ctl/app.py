"""The aiohttp application: services live in `cleanup_ctx`, routes stay thin."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from adapters.api import http as api_http
from adapters.chat import http as chat_http
from adapters.douyin import http as douyin_http
from adapters.sms import http as sms_http
from adapters.wechat import http as wechat_http
from adapters.weibo import http as weibo_http
from ctl.agents import http as agents_http
from ctl.asterisk.secrets import load_or_create
from ctl.channels import http as channels_http
from ctl.customers import http as customers_http
from ctl.desk import http as desk_http
from ctl.knowledge import http as knowledge_http
from ctl.routing import http as routing_http
from ctl.services import SERVICES, Services
from ctl.settings import Settings
from ctl.speech import http as speech_http
from ctl.supervision import http as supervision_http
from ctl.tickets import http as tickets_http
from ctl.web import demo, errors, health, openapi


def create_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[errors.errors])

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        services = Services(settings, load_or_create(settings.data_dir))
        await services.start()
        app[SERVICES] = services
        yield
        with contextlib.suppress(Exception):
            await services.stop()

    app.cleanup_ctx.append(lifecycle)
    app.add_routes(health.routes)
    app.add_routes(routing_http.routes)
    app.add_routes(agents_http.routes)
    app.add_routes(channels_http.routes)
    app.add_routes(chat_http.routes)
    app.add_routes(sms_http.routes)
    app.add_routes(wechat_http.routes)
    app.add_routes(weibo_http.routes)
    app.add_routes(douyin_http.routes)
    app.add_routes(api_http.routes)
    app.add_routes(openapi.routes)
    app.add_routes(tickets_http.routes)
    app.add_routes(knowledge_http.routes)
    app.add_routes(supervision_http.routes)
    app.add_routes(customers_http.routes)
    app.add_routes(speech_http.routes)
    app.add_routes(demo.routes)
    app.add_routes(desk_http.routes)
    app.on_response_prepare.append(desk_http.revalidate)
    return app
