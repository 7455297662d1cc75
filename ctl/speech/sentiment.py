"""Sentiment (negative / neutral / positive) and frequent keywords of customer text, en and
zh, offline: a lexicon with negation and intensifiers. Good enough to sort contacts and to
surface "frequent issues"; not a model of irony."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable

from ctl.speech.nlp import tokens

_CLAUSE = re.compile(r"[,.;:!?\u3001\u3002\uff01\uff0c\uff1a\uff1b\uff1f]")
_WORD = re.compile(r"[\u3400-\u9fff]+|[a-z]+(?:'[a-z]+)?")
_POSITIVE = (
    "good great thanks thank excellent happy love awesome perfect helpful resolved appreciate "
    "appreciated fantastic nice wonderful satisfied pleased quick fast easy friendly amazing "
    "glad fixed works best kind polite smooth recommend "
    "好 满意 谢谢 感谢 棒 不错 喜欢 很快 方便 专业 耐心 解决了 "
    "开心 赞 优秀 完美 热情 及时 好评 高兴 推荐")
_NEGATIVE = (
    "bad terrible awful angry hate worst broken useless slow problem issue complaint "
    "disappointed disappointing frustrated frustrating annoyed late wrong missing damaged poor "
    "rude horrible ridiculous unacceptable fail failed failure error scam never again waste "
    "wasted lost unhappy upset defective cheated overcharged worse "
    "差 慢 糟糕 生气 失望 投诉 垃圾 坏了 问题 骗 烂 难用 不满 "
    "愤怒 无语 恶心 太慢 差评 错误 丢失 损坏 欺骗 气死 麻烦 没用 退货")
_NEGATIONS = ("not no never don't didn't doesn't isn't wasn't aren't can't cannot won't "
              "couldn't hardly nothing 不 没有 没 别 未")
_BOOSTS = "very really so extremely totally absolutely too 非常 太 很 特别 真 超"
_POLARITY = {**dict.fromkeys(_POSITIVE.split(), 1.0), **dict.fromkeys(_NEGATIVE.split(), -1.0)}
_NEGATE = frozenset(_NEGATIONS.split())
_BOOST = frozenset(_BOOSTS.split())
_ZH_TERMS = sorted((t for t in {*_POLARITY, *_NEGATE, *_BOOST} if not t.isascii()),
                   key=len, reverse=True)


def _zh_terms(run: str) -> list[str]:
    """Greedy longest match of the lexicon's terms; other characters stand alone."""
    out, i = [], 0
    while i < len(run):
        term = next((t for t in _ZH_TERMS if run.startswith(t, i)), run[i])
        out.append(term)
        i += len(term)
    return out


def _terms(text: str) -> list[str]:
    out: list[str] = []
    for run in _WORD.findall(unicodedata.normalize("NFKC", text).casefold()):
        out.extend(_zh_terms(run) if "\u3400" <= run[0] <= "\u9fff" else [run])
    return out


def sentiment(text: str) -> tuple[str, float]:
    """("negative" | "neutral" | "positive", score in -1..1)."""
    score = sum(_clause(c) for c in _CLAUSE.split(unicodedata.normalize("NFKC", text)))
    value = max(-1.0, min(1.0, score / 2))
    label = "positive" if value >= 0.25 else "negative" if value <= -0.25 else "neutral"
    return label, round(value, 3)


def _clause(text: str) -> float:
    """A negation reaches the next few words of its clause ("not very good"), never
    across punctuation ("not shipped yet; so slow")."""
    score, flip, boost = 0.0, 0, 1.0
    for term in _terms(text):
        polarity = _POLARITY.get(term)
        if term in _NEGATE:
            flip = 3
        elif term in _BOOST:
            boost = 1.5
        elif polarity is not None:
            score += polarity * boost * (-1 if flip else 1)
            boost, flip = 1.0, 0
        else:
            flip = max(0, flip - 1)
    return score


def keywords(texts: Iterable[str], top: int = 10) -> list[tuple[str, int]]:
    """The terms most texts mention (each text counted once per term): frequent issues."""
    seen: Counter[str] = Counter()
    for text in texts:
        seen.update({t for t in tokens(text) if len(t) > 2 or not t.isascii()})
    return [(term, n) for term, n in seen.most_common(top) if n > 1]
