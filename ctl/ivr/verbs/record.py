from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from ctl.ivr.values import Value
from ctl.ivr.verbs.base import Args, Part, PromptSpec, Verb, prompt_parts

if TYPE_CHECKING:
    from ctl.ivr.runner import Context


class VoicemailTicket(BaseModel):
    model_config = ConfigDict(extra="forbid")
    subject: str = "Voicemail from {{ caller }}"
    department: str | None = None
    priority: str = "normal"
    category: str | None = "voicemail"


class RecordArgs(Args):
    prompt: PromptSpec | None = None  # e.g. "leave a message after the tone"
    max_seconds: float = Field(120.0, gt=0, le=3600)
    beep: bool = True
    ticket: VoicemailTicket | None = None  # open a ticket carrying the recording
    into: str = Field("recording", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")


class Record(Verb):
    """Voicemail: record the caller (# or hanging up ends it), optionally as a ticket."""

    name = "record"
    Args = RecordArgs
    outcomes = ("no_input",)
    waits_for_caller = True

    def __init__(self, args: RecordArgs) -> None:
        super().__init__(args)
        self.prompt = prompt_parts(args.prompt)
        self.subject = Value(args.ticket.subject) if args.ticket else None

    def prompts(self) -> list[tuple[str, tuple[Part, ...]]]:
        return [("prompt", self.prompt)]

    async def run(self, ctx: Context) -> str | None:
        await ctx.caller.play(ctx.utter(self.prompt), barge_in=False)
        path = await ctx.caller.record(max_seconds=self.args.max_seconds, beep=self.args.beep)
        if path is None:
            return "no_input"
        ctx.vars[self.args.into] = path
        t = self.args.ticket
        if t is not None and self.subject is not None:
            fields: dict[str, Any] = {
                "subject": self.subject(ctx.vars), "department": t.department,
                "priority": t.priority, "category": t.category, "attachments": [path],
                "description": "Voicemail left in the IVR", "source": "voicemail",
                "contact_id": ctx.caller.contact_id}
            ctx.vars["ticket"] = await ctx.services.create_ticket(fields)
        return None
