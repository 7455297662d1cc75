from __future__ import annotations

from typing import TYPE_CHECKING

from ctl.ivr.values import Value
from ctl.ivr.verbs.base import Args, Verb

if TYPE_CHECKING:
    from ctl.ivr.runner import Context


class MessageArgs(Args):
    channel: str = "sms"  # sms, email, wechat, chat...
    to: str = "{{ caller }}"
    text: str  # may use {{ variables }}
    subject: str | None = None  # email


class Message(Verb):
    """Send a follow-up (an SMS with the order's tracking link...) on another channel."""

    name = "message"
    Args = MessageArgs
    outcomes = ("error",)

    def __init__(self, args: MessageArgs) -> None:
        super().__init__(args)
        self.to, self.text = Value(args.to), Value(args.text)
        self.subject = Value(args.subject) if args.subject else None

    async def run(self, ctx: Context) -> str | None:
        try:
            sent = await ctx.services.send_message(
                self.args.channel, str(self.to(ctx.vars)), str(self.text(ctx.vars)),
                str(self.subject(ctx.vars)) if self.subject else None)
        except Exception as e:  # a channel down must not strand the caller
            await ctx.caller.log("message", {"channel": self.args.channel,
                                             "error": str(e)[:300]})
            return "error"
        await ctx.caller.log("message", {"channel": self.args.channel, "id": sent})
        return None
