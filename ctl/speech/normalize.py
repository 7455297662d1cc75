"""Text as a voice should read it: amounts, dates, times, order numbers; English and Chinese.

Synthesizers read "$12.50" or "2026-03-05" badly or not at all (espeak-ng's Mandarin voice
spells digits in English), so prompts are rewritten into words before synthesis.
"""

from __future__ import annotations

import re

_ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
         "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen",
         "seventeen", "eighteen", "nineteen"]
_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_SCALES = ((10**9, "billion"), (10**6, "million"), (1000, "thousand"), (100, "hundred"))
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December"]
_ORDINAL = {"one": "first", "two": "second", "three": "third", "five": "fifth",
            "eight": "eighth", "nine": "ninth", "twelve": "twelfth"}
_ZH_DIGITS = "零一二三四五六七八九"

# Order/reference numbers: letters with 4+ digits, or 6+ digits: read one character at a time.
# ASCII boundaries: Chinese characters are word characters, so \b finds none in "订单A123".
_L, _R = r"(?<![A-Za-z0-9])", r"(?![A-Za-z0-9])"
_CODE = re.compile(_L + r"(?=[A-Za-z0-9-]*\d{4})(?:[A-Za-z]+-?\d[\dA-Za-z-]*|\d{6,})" + _R)
_MONEY_EN = re.compile(r"([$€£¥])\s?(\d[\d,]*)(?:\.(\d{1,2}))?")
_MONEY_ZH = re.compile(r"[¥￥]\s?(\d[\d,]*)(?:\.(\d{1,2}))?|(\d[\d,]*)(?:\.(\d{1,2}))?\s?元")
_DATE = re.compile(_L + r"(\d{4})-(\d{1,2})-(\d{1,2})" + _R)
_DATE_ZH = re.compile(r"(\d{4})年(\d{1,2})月(\d{1,2})日")
_TIME = re.compile(_L + r"(\d{1,2}):(\d{2})" + _R)
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s?%")
_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")
_CURRENCY = {"$": ("dollar", "cent"), "€": ("euro", "cent"), "£": ("pound", "penny"),
             "¥": ("yuan", "fen")}


def normalize(text: str, language: str = "en") -> str:
    """`text` with every number-like token written out in words of `language` (en, zh)."""
    if language.lower().startswith("zh") or language.lower().startswith("cmn"):
        return _zh(text)
    return _en(text)


# --- English -------------------------------------------------------------------------

def number_en(n: int) -> str:
    if n < 0:
        return "minus " + number_en(-n)
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else "-" + _ONES[n % 10])
    for value, name in _SCALES:
        if n >= value:
            head, rest = divmod(n, value)
            return f"{number_en(head)} {name}" + (f" {number_en(rest)}" if rest else "")
    raise AssertionError(n)


def ordinal_en(n: int) -> str:
    words = number_en(n)
    stem, sep, last = words.rpartition("-" if "-" in words.split()[-1] else " ")
    if last in _ORDINAL:
        last = _ORDINAL[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return stem + sep + last


def _year_en(y: int) -> str:
    if 2000 <= y < 2010 or y % 100 == 0:
        return number_en(y)
    head, tail = divmod(y, 100)
    return f"{number_en(head)} " + (f"oh {number_en(tail)}" if tail < 10 else number_en(tail))


def _decimal_en(token: str) -> str:
    whole, _, frac = token.replace(",", "").partition(".")
    out = number_en(int(whole))
    return out + (" point " + " ".join(_ONES[int(d)] for d in frac) if frac else "")


def _money_en(m: re.Match[str]) -> str:
    unit, sub = _CURRENCY[m.group(1)]
    whole, cents = int(m.group(2).replace(",", "")), int((m.group(3) or "0").ljust(2, "0"))
    out = f"{number_en(whole)} {unit}" + ("s" if whole != 1 and unit != "yuan" else "")
    if cents:
        plural = ("pence" if sub == "penny" else sub + "s") if cents != 1 else sub
        out += f" and {number_en(cents)} {plural if sub != 'fen' else sub}"
    return out


def _date_en(m: re.Match[str]) -> str:
    y, mo, d = int(m.group(1)), int(m.group(2)), int(m.group(3))
    if not 1 <= mo <= 12 or not 1 <= d <= 31:
        return m.group(0)
    return f"{_MONTHS[mo - 1]} {ordinal_en(d)}, {_year_en(y)}"


def _time_en(m: re.Match[str]) -> str:
    h, mi = int(m.group(1)), int(m.group(2))
    if h > 23 or mi > 59:
        return m.group(0)
    if mi == 0:
        return f"{number_en(h)} o'clock"
    return f"{number_en(h)} " + (f"oh {number_en(mi)}" if mi < 10 else number_en(mi))


def _code_en(m: re.Match[str]) -> str:
    return " ".join(_ONES[int(c)] if c.isdigit() else c.upper()
                    for c in m.group(0) if c != "-")


def _en(text: str) -> str:
    text = _DATE.sub(_date_en, text)
    text = _MONEY_EN.sub(_money_en, text)
    text = _TIME.sub(_time_en, text)
    text = _CODE.sub(_code_en, text)
    text = _PERCENT.sub(lambda m: _decimal_en(m.group(1)) + " percent", text)
    return _NUMBER.sub(lambda m: _decimal_en(m.group(0)), text)


# --- Chinese -------------------------------------------------------------------------

def number_zh(n: int) -> str:
    if n < 0:
        return "负" + number_zh(-n)
    if n < 10:
        return _ZH_DIGITS[n]
    for value, name in ((10**8, "亿"), (10**4, "万")):
        if n >= value:
            head, rest = divmod(n, value)
            gap = "零" if 0 < rest < value // 10 else ""
            return number_zh(head) + name + (gap + number_zh(rest) if rest else "")
    out, zero = "", False
    for value, name in ((1000, "千"), (100, "百"), (10, "十"), (1, "")):
        digit = n // value % 10
        if digit:
            out += ("零" if zero and out else "") + _ZH_DIGITS[digit] + name
            zero = False
        else:
            zero = True
    # 10..19 are read 十, 十一..., not 一十一.
    return out[1:] if 10 <= n < 20 else out


def _decimal_zh(token: str) -> str:
    whole, _, frac = token.replace(",", "").partition(".")
    return number_zh(int(whole)) + ("点" + "".join(_ZH_DIGITS[int(d)] for d in frac)
                                    if frac else "")


def _money_zh(m: re.Match[str]) -> str:
    whole = int((m.group(1) or m.group(3)).replace(",", ""))
    frac = (m.group(2) or m.group(4) or "").ljust(2, "0")
    out = number_zh(whole) + "元"
    if frac and int(frac[0]):
        out += _ZH_DIGITS[int(frac[0])] + "角"
    if frac and int(frac[1]):
        out += _ZH_DIGITS[int(frac[1])] + "分"
    return out


def _date_zh(m: re.Match[str]) -> str:
    year = "".join(_ZH_DIGITS[int(c)] for c in m.group(1))
    return f"{year}年{number_zh(int(m.group(2)))}月{number_zh(int(m.group(3)))}日"


def _zh(text: str) -> str:
    text = _DATE.sub(lambda m: _date_zh(m), text)
    text = _DATE_ZH.sub(_date_zh, text)
    text = _MONEY_ZH.sub(_money_zh, text)
    text = _TIME.sub(lambda m: f"{number_zh(int(m.group(1)))}点"
                     + (f"{number_zh(int(m.group(2)))}分" if int(m.group(2)) else "整"), text)
    text = _CODE.sub(lambda m: "".join(_ZH_DIGITS[int(c)] if c.isdigit() else c.upper()
                                        for c in m.group(0) if c != "-"), text)
    text = _PERCENT.sub(lambda m: "百分之" + _decimal_zh(m.group(1)), text)
    return _NUMBER.sub(lambda m: _decimal_zh(m.group(0)), text)
