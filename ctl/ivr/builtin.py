"""Flows written in Python: the demo that answers, plays a prompt and hangs up."""

from __future__ import annotations

from ctl.telephony.calls import Flow
from ctl.telephony.queueing import VoiceQueues
from ctl.telephony.session import CallSession


def demo(prompt: str) -> Flow:
    async def run(call: CallSession) -> None:
        await call.answer()
        await call.play(f"sound:{prompt}")

    return run


def queue(name: str, voice: VoiceQueues) -> Flow:
    """Answer, greet, wait in queue `name` for an agent."""
    async def run(call: CallSession) -> None:
        await call.answer()
        if call.info.contact_id not in voice.routing.engine.contacts:  # not when adopted
            await call.play("sound:queue-periodic-announce")
        await voice.wait(call, name)

    return run
