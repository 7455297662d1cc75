"""Decoding text the way mail in practice needs, not as it is declared.

Chinese mail declared GB2312 routinely carries GBK or GB18030 characters, Big5 carries
HKSCS, and some mail declares nothing or a charset that does not exist. Supersets are
used for the declared family; unknown or wrong declarations fall back to UTF-8, then
GB18030, then Windows-1252, then Latin-1, which decodes any byte. What happened is reported, so a
message read with a guess can be told from one read as declared.
"""

from __future__ import annotations

import codecs
from email.header import decode_header

# Declared name -> the superset that reads what senders actually put under it.
_SUPERSET = {
    "gb2312": "gb18030", "gbk": "gb18030", "cp936": "gb18030", "x-gbk": "gb18030",
    "euc-cn": "gb18030", "gb_2312-80": "gb18030", "x-euc-cn": "gb18030",
    "big5": "big5hkscs", "x-big5": "big5hkscs", "cn-big5": "big5hkscs",
    "ks_c_5601-1987": "cp949", "euc-kr": "cp949",
    "iso-8859-1": "cp1252", "latin1": "cp1252", "us-ascii": "utf-8", "ascii": "utf-8",
    "shift_jis": "cp932", "x-sjis": "cp932", "unicode-1-1-utf-7": "utf-7",
}
_FALLBACKS = ("utf-8", "gb18030", "cp1252")  # then latin-1, which decodes any byte


def codec(declared: str | None) -> str | None:
    """The codec for a declared charset, or None if Python knows no such charset."""
    name = (declared or "").strip().strip('"').lower()
    if not name:
        return None
    name = _SUPERSET.get(name, name)
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def decode(data: bytes, declared: str | None) -> tuple[str, str | None]:
    """(text, problem): problem names a wrong or unknown declaration, else None."""
    name = codec(declared)
    problem: str | None = f"unknown charset {declared!r}" if declared else None
    if name is not None:
        try:
            return data.decode(name), None
        except (UnicodeDecodeError, ValueError):
            problem = f"not valid {declared}"
    for fallback in _FALLBACKS:
        try:
            return data.decode(fallback), problem
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1"), problem


def header(raw: object) -> str:
    """A header's text: RFC 2047 encoded words decoded with the same leniency."""
    if raw is None:
        return ""
    text = str(raw)
    try:
        parts = decode_header(text)
    except Exception:  # a malformed encoded word: keep the raw text rather than fail
        return " ".join(text.split())
    out = []
    for chunk, charset in parts:
        if isinstance(chunk, bytes):
            out.append(decode(chunk, charset or "utf-8")[0])
        else:
            out.append(chunk)
    return " ".join("".join(out).split())
