"""Settings of the digital channels (`channels:` in the settings file)."""

from __future__ import annotations

import base64
import binascii

from pydantic import BaseModel, ConfigDict, Field, field_validator


class ImapSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str
    port: int = Field(993, ge=1, le=65535)
    ssl: bool = True
    username: str
    password: str
    mailbox: str = "INBOX"
    idle_seconds: float = Field(300.0, gt=0)  # re-issue IDLE this often (RFC 2177: < 29 min)


class EmailSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    address: str = "support@localhost"  # From: of replies; the domain of our Message-IDs
    # Built-in SMTP server for inbound mail (None: off). Bind to loopback unless a real
    # MX points here.
    smtp_host: str = "127.0.0.1"
    smtp_port: int | None = Field(None, ge=0, le=65535)
    # Outbound relay (a local MTA or a provider's submission port).
    relay_host: str = "127.0.0.1"
    relay_port: int = Field(25, ge=1, le=65535)
    relay_username: str | None = None
    relay_password: str | None = None
    relay_starttls: bool = False
    max_message_bytes: int = Field(30 * 1024 * 1024, ge=1024)  # the SMTP server's SIZE
    domains: list[str] = Field(default_factory=list)  # accepted recipient domains; []: any
    # Existing mailboxes read with IMAP IDLE.
    imap: list[ImapSettings] = Field(default_factory=list)


class ChatSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_frame_bytes: int = Field(16384, ge=256)  # one websocket message from a visitor
    resume_seconds: float = Field(600.0, gt=0)  # a dropped visitor may resume this long


class SmsSettings(BaseModel):
    """A generic HTTP SMS gateway: inbound webhooks signed with HMAC, outbound by template."""

    model_config = ConfigDict(extra="forbid")

    secret: str | None = None  # HMAC-SHA256 key shared with the gateway; None: SMS off
    max_skew: float = Field(300.0, gt=0)  # webhooks older (or newer) than this are refused
    send_url: str | None = None  # outbound: POST here
    # The request body; {to}, {text}, {sender}, {message_id} are replaced, JSON-escaped.
    send_body: str = '{"to": "{to}", "from": "{sender}", "text": "{text}", "ref": "{message_id}"}'
    send_headers: dict[str, str] = Field(default_factory=dict)  # e.g. Authorization
    sender: str = ""  # our number or sender id
    id_field: str = "id"  # where the gateway's answer (JSON) puts its message id


class WechatSettings(BaseModel):
    """A WeChat Official Account (公众号): its callback URL and customer-service API."""

    model_config = ConfigDict(extra="forbid")

    token: str | None = None  # the callback Token set in WeChat's console; None: WeChat off
    app_id: str = ""  # AppID: checked in encrypted messages, and to get access tokens
    app_secret: str = ""  # AppSecret: outbound replies need it
    encoding_aes_key: str | None = None  # the 43-character EncodingAESKey (safe mode)
    api_base: str = "https://api.weixin.qq.com"
    max_skew: float = Field(300.0, gt=0)  # callbacks whose timestamp is further off: refused
    answer_within: float = Field(4.0, gt=0)  # WeChat gives up after 5 s
    token_margin: float = Field(300.0, ge=0)  # refresh the access token this long before expiry

    @field_validator("encoding_aes_key")
    @classmethod
    def _aes_key(cls, value: str | None) -> str | None:
        try:
            ok = value is None or (len(value) == 43
                                   and len(base64.b64decode(value + "=", validate=True)) == 32)
        except binascii.Error:
            ok = False
        if not ok:
            raise ValueError("encoding_aes_key must be WeChat's 43-character EncodingAESKey "
                             "(letters and digits)")
        return value


class WeiboSettings(BaseModel):
    """Sina Weibo's fan service (粉丝服务平台): the message push URL and the reply API."""

    model_config = ConfigDict(extra="forbid")

    app_secret: str | None = None  # the App Secret of the APPKEY set in the console; None: off
    access_token: str = ""  # the fan-service token from the console's developer page: replies
    api_base: str = "https://m.api.weibo.com"
    # Where customers' images and voice are downloaded (2/mss/msget.json, with the token).
    media_base: str = "https://upload.api.weibo.com"
    max_skew: float = Field(300.0, gt=0)  # pushes whose timestamp is further off: refused
    answer_within: float = Field(4.0, gt=0)  # Weibo gives up after 5 s


class DouyinSettings(BaseModel):
    """Douyin Open Platform: the webhook (private messages) and the send-message API."""

    model_config = ConfigDict(extra="forbid")

    client_secret: str | None = None  # the app's client_secret: signs webhooks; None: off
    client_key: str = ""  # the app's client_key: webhooks for other apps are refused
    # The business account that authorized the app (scope im.direct_message): its open_id
    # and user access token; replies need both. With refresh_token, an expired token is
    # renewed once when Douyin says so, and the renewal shared (the live state: Redis).
    open_id: str = ""
    access_token: str = ""
    refresh_token: str = ""
    api_base: str = "https://open.douyin.com"
    # Hosts (and their subdomains) a message's resource_url is downloaded from: Douyin's
    # CDNs. Others are not fetched (the push is signed, but a URL is still an address).
    media_hosts: list[str] = Field(default_factory=lambda: [
        "douyinpic.com", "douyinstatic.com", "douyinvod.com", "bytedance.com",
        "byteimg.com", "douyin.com"])
    answer_within: float = Field(4.0, gt=0)  # Douyin gives up after 5 s


class ChannelSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    queue: str = "general"  # where new digital contacts wait, unless `queues` says otherwise
    queues: dict[str, str] = Field(default_factory=dict)  # channel -> queue
    max_attachment_bytes: int = Field(10 * 1024 * 1024, ge=1)
    # Accepted attachment types ("type/*" accepts a whole family).
    attachment_types: list[str] = Field(default_factory=lambda: [
        "image/*", "application/pdf", "text/plain", "text/csv", "audio/*", "video/mp4",
        "application/zip", "application/msword", "application/vnd.openxmlformats-officedocument.*",
        "application/vnd.ms-excel", "message/rfc822"])
    # Per sender (inbound) and per recipient (outbound): a token bucket.
    rate_per_minute: float = Field(60.0, gt=0)
    rate_burst: int = Field(20, ge=1)
    send_timeout: float = Field(30.0, gt=0)  # an adapter's send taking longer has failed
    email: EmailSettings = Field(default_factory=EmailSettings)  # type: ignore[arg-type]
    chat: ChatSettings = Field(default_factory=ChatSettings)  # type: ignore[arg-type]
    sms: SmsSettings = Field(default_factory=SmsSettings)  # type: ignore[arg-type]
    wechat: WechatSettings = Field(default_factory=WechatSettings)  # type: ignore[arg-type]
    weibo: WeiboSettings = Field(default_factory=WeiboSettings)  # type: ignore[arg-type]
    douyin: DouyinSettings = Field(default_factory=DouyinSettings)  # type: ignore[arg-type]

    def queue_for(self, channel: str) -> str:
        return self.queues.get(channel, self.queue)

