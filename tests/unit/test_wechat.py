"""WeChat's message crypto and callback parsing, without a network."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.wechat.callback import WechatCallback, parse_xml, to_inbound
from adapters.wechat.crypto import MessageCrypt, aes_key, signature
from ctl.channels.contract import Inbound
from ctl.channels.settings import WechatSettings
from ctl.errors import BadRequest, ConfigError, Unauthorized
from ctl.settings import load_settings

KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


@given(st.text(max_size=300))
def test_encrypt_decrypt_round_trip(text: str) -> None:
    crypt = MessageCrypt(KEY, "wx123")
    sealed = crypt.encrypt(text)
    assert crypt.decrypt(sealed) == text
    with pytest.raises(Unauthorized):
        MessageCrypt(KEY, "wx456").decrypt(sealed)


def test_signature_is_sha1_of_sorted_parts() -> None:
    # sorted: "1409304348" < "pamtest" < "xxxxxx"
    import hashlib
    assert signature("pamtest", "1409304348", "xxxxxx") == \
        hashlib.sha1(b"1409304348pamtestxxxxxx").hexdigest()


def test_bad_aes_key_named() -> None:
    with pytest.raises(ConfigError, match="EncodingAESKey"):
        aes_key("short")


def test_settings_name_a_bad_aes_key(tmp_path: Path) -> None:
    cfg = tmp_path / "ctl.yaml"
    cfg.write_text("channels:\n  wechat:\n    token: t\n    encoding_aes_key: nope\n")
    with pytest.raises(ConfigError, match=r"ctl.yaml:4:\d+: channels.wechat.encoding_aes_key"):
        load_settings(cfg)


def test_message_types() -> None:
    f = parse_xml(b"<xml><FromUserName><![CDATA[o1]]></FromUserName><MsgType>text</MsgType>"
                  b"<Content><![CDATA[a <b>]]></Content><MsgId>9</MsgId></xml>")
    got = to_inbound(f)
    assert got is not None and got.text == "a <b>" and got.identity == ("wechat_openid", "o1")
    assert got.external_id == "wechat:9"
    with pytest.raises(BadRequest, match="root"):
        parse_xml(b"<html/>")
    assert to_inbound({"FromUserName": "o1", "MsgType": "event", "Event": "CLICK"}) is None


class SlowChannels:
    """Stands in for ChannelService.receive when storage is slow."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.got: list[Inbound] = []

    async def receive(self, msg: Inbound) -> Any:
        await self.release.wait()
        self.got.append(msg)


async def test_answers_within_the_limit_while_storing_goes_on() -> None:
    channels = SlowChannels()
    hook = WechatCallback(channels, WechatSettings(token="t", answer_within=0.05))  # type: ignore[arg-type]
    ts, nonce = str(int(time.time())), "n"
    q = {"timestamp": ts, "nonce": nonce, "signature": signature("t", ts, nonce)}
    body = b"<xml><FromUserName>o1</FromUserName><MsgType>text</MsgType>" \
        b"<Content>hi</Content><MsgId>1</MsgId></xml>"
    assert await hook.handle(q, body) == "success"
    assert channels.got == []
    channels.release.set()
    await hook.deadline.settle()
    assert [m.text for m in channels.got] == ["hi"]
