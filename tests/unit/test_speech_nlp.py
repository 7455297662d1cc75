"""Intent matching from text: en and zh, punctuation/case, ambiguity, no match."""

from __future__ import annotations

import string

from hypothesis import given
from hypothesis import strategies as st

from ctl.speech.nlp import match_intent, normalize, phrase_score

INTENTS = {
    "refund": ["refund", "I want a refund", "money back", "退款", "我要退钱"],
    "agent": ["agent", "talk to a person", "representative", "人工", "转人工服务"],
    "balance": ["account balance", "how much do I owe", "余额", "查询余额"],
    "cancel": ["cancel my order", "cancel", "取消订单"],
}


def test_exact_phrase_inside_a_sentence() -> None:
    assert match_intent("Hi, I want a REFUND, please!", INTENTS) == ("refund", 1.0)
    intent, conf = match_intent("can I talk to a person", INTENTS)
    assert intent == "agent" and conf == 1.0


def test_chinese_without_spaces() -> None:
    assert match_intent("你好\uff0c我要退款\u3002", INTENTS)[0] == "refund"
    assert match_intent("帮我转人工", INTENTS)[0] == "agent"
    assert match_intent("我想查一下余额", INTENTS)[0] == "balance"
    assert match_intent("请取消订单", INTENTS)[0] == "cancel"


def test_words_in_another_order_and_misspellings() -> None:
    intent, conf = match_intent("balance of my account", INTENTS)
    assert intent == "balance" and 0.5 < conf < 1.0
    assert match_intent("refnd", INTENTS)[0] == "refund"


def test_nothing_matches() -> None:
    assert match_intent("the weather is nice today", INTENTS) == (None, 0.0)
    assert match_intent("", INTENTS) == (None, 0.0)
    assert match_intent("???", INTENTS) == (None, 0.0)
    assert match_intent("refund", {}) == (None, 0.0)
    assert match_intent("今天天气很好", INTENTS) == (None, 0.0)


def test_ambiguity_lowers_confidence() -> None:
    clear = match_intent("cancel", INTENTS)[1]
    both = match_intent("cancel and refund", INTENTS)
    assert both[0] in ("cancel", "refund") and both[1] < clear


def test_the_longer_whole_phrase_wins_over_one_inside_it() -> None:
    intents = {"stop": ["cancel"], "cancel_order": ["cancel my order"]}
    assert match_intent("please cancel my order", intents) == ("cancel_order", 1.0)
    assert match_intent("cancel", intents)[0] == "stop"
    assert match_intent("取消订单", {"stop": ["取消"], "cancel_order": ["取消订单"]}) == (
        "cancel_order", 1.0)


def test_normalize_ignores_case_width_and_punctuation() -> None:
    assert normalize("  \uff32\uff25\uff26\uff35\uff2e\uff24!!  now,") == "refund now"
    assert phrase_score("Refund.", "refund") == 1.0


words = st.text(alphabet=string.ascii_letters + " ,.!?", max_size=40)


@given(words)
def test_confidence_is_bounded_and_none_means_zero(text: str) -> None:
    intent, conf = match_intent(text, INTENTS)
    assert 0.0 <= conf <= 1.0
    assert (intent is None) == (conf == 0.0)


@given(st.sampled_from([p for ps in INTENTS.values() for p in ps]), words)
def test_a_phrase_said_whole_is_never_missed(phrase: str, noise: str) -> None:
    intent, conf = match_intent(f"{noise} {phrase}", INTENTS)
    assert intent is not None and conf >= 0.5
