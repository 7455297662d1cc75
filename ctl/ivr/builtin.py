"""Flows written in Python: the demo that answers, plays a prompt and hangs up."""

from __future__ import annotations

from ctl.telephony.calls import Flow
from ctl.telephony.session import CallSession


def demo(prompt: str) -> Flow:
    async def run(call: CallSession) -> None:
        await call.answer()
        await call.play(f"sound:{prompt}")

    return run
