"""MIME as mail clients in practice write it: charsets, transfer encodings, attachments,
threading headers, bounces and automatic replies; and parsing never fails."""

from __future__ import annotations

import base64
import quopri

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.email.classify import automatic, bounce
from adapters.email.parse import parse

ZH = "您好\uff0c我的订单还没到。鎔"  # 鎔 is in GBK/GB18030 but not in GB2312


def mail(body: bytes, charset: str, cte: str = "8bit", extra: str = "",
         subject: str = "Hello") -> bytes:
    head = (f"From: Li Lei <li@example.cn>\r\nTo: support@localhost\r\nSubject: {subject}\r\n"
            f"Message-ID: <m1@example.cn>\r\n{extra}MIME-Version: 1.0\r\n"
            f"Content-Type: text/plain; charset={charset}\r\n"
            f"Content-Transfer-Encoding: {cte}\r\n\r\n")
    return head.encode("ascii") + body


@pytest.mark.parametrize(("declared", "codec", "text"), [
    ("utf-8", "utf-8", ZH),
    ("gbk", "gbk", ZH),
    ("gb2312", "gbk", ZH),  # declared GB2312, written with a GBK-only character
    ("GB18030", "gb18030", ZH + "𠀀"),
    ("big5", "big5", "您好\uff0c我的訂單還沒到"),
    ("iso-8859-1", "iso-8859-1", "Grüße, ça va"),
    ("iso-8859-2", "iso-8859-2", "Zażółć gęślą jaźń"),
    ("iso-8859-15", "iso-8859-15", "Prix: 10 €"),
])
@pytest.mark.parametrize("cte", ["8bit", "base64", "quoted-printable"])
def test_charsets_and_transfer_encodings(declared: str, codec: str, text: str, cte: str
                                         ) -> None:
    raw = text.encode(codec)
    body = {"8bit": raw, "base64": base64.encodebytes(raw),
            "quoted-printable": quopri.encodestring(raw)}[cte]
    got = parse(mail(body, declared, cte))
    assert got.text == text
    assert got.problems == []
    assert (got.sender, got.name, got.message_id) == ("li@example.cn", "Li Lei", "m1@example.cn")


def test_wrong_or_unknown_charset_is_read_and_reported() -> None:
    got = parse(mail("你好".encode("gbk"), "utf-8"))
    assert got.text == "你好" and "not valid utf-8" in got.problems[0]
    got = parse(mail("héllo".encode(), "x-klingon"))
    assert got.text == "héllo" and "unknown charset" in got.problems[0]


def test_encoded_word_headers() -> None:
    subject = "=?GB2312?B?" + base64.b64encode("订单问题".encode("gb2312")).decode() + "?= #42"
    raw = mail(b"x", "utf-8", subject=subject).replace(
        b"From: Li Lei", b"From: =?big5?Q?=A7=F5=B9p?=")
    got = parse(raw)
    assert got.subject == "订单问题 #42"
    assert got.name == "李雷" and got.sender == "li@example.cn"


def test_threading_headers() -> None:
    got = parse(mail(b"x", "utf-8", extra="In-Reply-To: <b@x>\r\n"
                     "References: <a@x>\r\n <b@x>\r\n"))
    assert got.references == ("a@x", "b@x") and got.in_reply_to == "b@x"
    assert got.thread == "a@x" and got.refs == ("a@x", "b@x")
    alone = parse(mail(b"x", "utf-8"))
    assert alone.thread == "m1@example.cn" and alone.refs == ()


MULTI = b"""From: bob@example.org
To: support@localhost
Subject: photo
Message-ID: <p1@example.org>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="B"

--B
Content-Type: multipart/alternative; boundary="A"

--A
Content-Type: text/plain; charset=utf-8

See the photo.
--A
Content-Type: text/html; charset=utf-8

<p>See the <b>photo</b>.</p>
--A--
--B
Content-Type: image/png
Content-Disposition: attachment; filename*=utf-8''%E5%9B%BE%E7%89%87.png
Content-Transfer-Encoding: base64

iVBORw0KGgo=
--B
Content-Type: message/rfc822

From: someone@else
Subject: forwarded

not the sender's words
--B--
"""


def test_multipart_text_attachments_and_forwarded_mail() -> None:
    got = parse(MULTI)
    assert got.text == "See the photo."
    names = [(a.name, a.content_type) for a in got.attachments]
    assert names == [("图片.png", "image/png"), ("part.rfc822", "message/rfc822")]
    assert got.attachments[0].data == b"\x89PNG\r\n\x1a\n"
    assert b"not the sender's words" in got.attachments[1].data


def test_html_only_becomes_text() -> None:
    raw = mail(b"<html><style>p{}</style><p>Hi</p><p>Two&nbsp;lines</p></html>", "utf-8")
    raw = raw.replace(b"text/plain", b"text/html")
    assert parse(raw).text == "Hi\nTwo lines"  # whitespace (nbsp too) collapsed


def test_malformed_mime_keeps_what_it_can() -> None:
    raw = (b"From: x@example.org\r\nSubject: broken\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=\"never\"\r\n\r\nplain words, no parts\r\n")
    got = parse(raw)
    assert "plain words" in got.text and got.problems  # the defects are listed


DSN = b"""From: MAILER-DAEMON@mx.example.org
To: support@localhost
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="R"

--R
Content-Type: text/plain

This is the mail system. Your message could not be delivered.
--R
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.org

Final-Recipient: rfc822; gone@example.org
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 <gone@example.org>: user unknown
--R
Content-Type: text/rfc822-headers

From: support@localhost
To: gone@example.org
Message-ID: <ours-1@localhost>
Subject: Re: order

--R--
"""


def test_bounce_names_the_original_and_the_reason() -> None:
    b = bounce(parse(DSN))
    assert b is not None and b.original_id == "ours-1@localhost"
    assert b.recipient == "gone@example.org" and "5.1.1" in b.reason and "user unknown" in b.reason
    assert bounce(parse(MULTI)) is None


@pytest.mark.parametrize("extra", ["Auto-Submitted: auto-replied\r\n", "X-Autoreply: yes\r\n",
                                   "Precedence: bulk\r\n"])
def test_automatic_replies(extra: str) -> None:
    assert automatic(parse(mail(b"I am away", "utf-8", extra=extra))) is not None


def test_automatic_by_subject_and_not_a_person() -> None:
    assert automatic(parse(mail(b"x", "utf-8", subject="Out of Office: back Monday")))
    subject = "=?utf-8?B?" + base64.b64encode("自动回复: 休假".encode()).decode() + "?="
    assert automatic(parse(mail(b"x", "utf-8", subject=subject)))
    assert automatic(parse(mail(b"x", "utf-8", extra="Auto-Submitted: no\r\n"))) is None
    assert automatic(parse(MULTI)) is None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_parse_never_fails(raw: bytes) -> None:
    got = parse(raw)
    assert isinstance(got.text, str)
    bounce(got)
    automatic(got)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200), st.sampled_from(["utf-8", "gbk", "big5", "latin-1", "nope"]))
def test_any_declared_charset_reads(text: str, declared: str) -> None:
    got = parse(mail(text.encode("utf-8"), declared, "base64"))
    assert isinstance(got.text, str)
