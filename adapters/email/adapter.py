"""The email channel as the controller runs it: its SMTP server, mailbox watchers and
the outbound sender registered with the channels' registry."""

from __future__ import annotations

from adapters.email.imap import ImapWatcher
from adapters.email.intake import EmailIntake
from adapters.email.send import SmtpSender
from adapters.email.smtp import SmtpServer
from ctl.channels.service import ChannelService
from ctl.channels.settings import EmailSettings


class EmailAdapter:
    def __init__(self, settings: EmailSettings, channels: ChannelService) -> None:
        self.settings = settings
        self.intake = EmailIntake(channels, settings.address)
        self.sender = SmtpSender(settings)
        self.server = SmtpServer(self.intake, settings.smtp_host, settings.smtp_port or 0,
                                 settings.max_message_bytes, settings.domains) \
            if settings.smtp_port is not None else None
        self.watchers = [ImapWatcher(self.intake, box) for box in settings.imap]
        channels.outbound.register("email", self.sender)

    async def start(self) -> None:
        if self.server is not None:
            await self.server.start()
        for watcher in self.watchers:
            watcher.start()

    async def stop(self) -> None:
        for watcher in self.watchers:
            await watcher.stop()
        if self.server is not None:
            await self.server.stop()
