from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from ctl.ivr.expr import Expr
from ctl.ivr.values import Value
from ctl.ivr.verbs.base import Args, Verb

if TYPE_CHECKING:
    from ctl.ivr.runner import Context

VAR = r"^[A-Za-z_][A-Za-z0-9_]*$"


class HttpArgs(Args):
    _short: ClassVar[str | None] = "url"
    url: str  # may use {{ variables }}
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = None  # sent as JSON; values may be "= expressions" or {{ templates }}
    timeout: float = Field(3.0, gt=0, le=30)  # per attempt
    retries: int = Field(1, ge=0, le=5)  # more attempts after a network error or a 5xx
    into: str = Field("http", pattern=VAR)  # {status, body} go here


class Http(Verb):
    """Call a CRM or order system; its answer goes into a variable, failures to `error`."""

    name = "http"
    Args = HttpArgs
    outcomes = ("error",)

    def __init__(self, args: HttpArgs) -> None:
        super().__init__(args)
        self.url = Value(args.url)
        self.headers = Value(args.headers)
        self.body = Value(args.body)

    def expressions(self) -> list[Expr]:
        return self.body.expressions() + self.url.expressions()

    async def run(self, ctx: Context) -> str | None:
        a = self.args
        url, headers, body = self.url(ctx.vars), self.headers(ctx.vars), self.body(ctx.vars)
        status, answer = 0, None
        for attempt in range(a.retries + 1):
            if attempt:
                await asyncio.sleep(0.2 * attempt)  # a moment before asking a failing server again
            try:
                status, answer = await ctx.services.http(a.method, url, headers=headers,
                                                         body=body, timeout=a.timeout)
            except (OSError, TimeoutError) as e:
                status, answer = 0, {"error": str(e) or type(e).__name__}
                continue
            if status < 500:
                break
        ctx.vars[a.into] = {"status": status, "body": answer}
        await ctx.caller.log("http", {"url": url.split("?")[0], "status": status})
        return None if 200 <= status < 300 else "error"
