"""Sentiment and keywords on labelled customer messages, en and zh; accuracy printed."""

from __future__ import annotations

import pytest

from ctl.speech.sentiment import keywords, sentiment

LABELLED = [
    ("Thanks, the agent was very helpful and fixed it quickly", "positive"),
    ("Great service, I really appreciate it", "positive"),
    ("Perfect, everything works now", "positive"),
    ("I love the new app, so easy to use", "positive"),
    ("The delivery was fast and the driver was friendly", "positive"),
    ("Not bad at all, I'm satisfied", "positive"),
    ("This is the worst service I have ever had", "negative"),
    ("My package arrived damaged and nobody answers", "negative"),
    ("I am very disappointed, the refund still failed", "negative"),
    ("The app is useless and keeps crashing with an error", "negative"),
    ("Your agent was rude and the wait was ridiculous", "negative"),
    ("It's not good, the item is broken", "negative"),
    ("I want to change my delivery address", "neutral"),
    ("What are your opening hours on Sunday?", "neutral"),
    ("Please send me the invoice for order 1234", "neutral"),
    ("Can I pay by card?", "neutral"),
    ("服务很好\uff0c谢谢你们", "positive"),
    ("客服非常耐心\uff0c问题解决了", "positive"),
    ("物流很快\uff0c很满意", "positive"),
    ("东西不错\uff0c推荐", "positive"),
    ("质量太差了\uff0c我要投诉", "negative"),
    ("等了三天还没发货\uff0c太慢了", "negative"),
    ("收到的商品坏了\uff0c很失望", "negative"),
    ("不满意\uff0c客服态度很差", "negative"),
    ("这个产品不好用", "negative"),
    ("我想修改收货地址", "neutral"),
    ("请问你们几点下班", "neutral"),
    ("订单什么时候发货", "neutral"),
]


def test_labelled_examples() -> None:
    right = [(t, want, sentiment(t)) for t, want in LABELLED if sentiment(t)[0] == want]
    wrong = [(t, want, sentiment(t)) for t, want in LABELLED if sentiment(t)[0] != want]
    en = [x for x in LABELLED if x[0].isascii()]
    en_right = [x for x in right if x[0].isascii()]
    print(f"\nsentiment: {len(right)}/{len(LABELLED)} right (en {len(en_right)}/{len(en)}, "
          f"zh {len(right) - len(en_right)}/{len(LABELLED) - len(en)}); wrong: {wrong}")
    assert len(right) / len(LABELLED) >= 0.85, wrong


@pytest.mark.parametrize(("text", "label"), [
    ("good", "positive"), ("not good", "negative"), ("not very good", "negative"),
    ("不好", "negative"), ("不错", "positive"), ("没有问题", "positive"), ("", "neutral"),
])
def test_negation_and_compounds(text: str, label: str) -> None:
    assert sentiment(text)[0] == label


def test_score_is_bounded() -> None:
    assert sentiment("bad " * 50)[1] == -1.0
    assert sentiment("great " * 50)[1] == 1.0


def test_keywords_surface_frequent_issues() -> None:
    texts = ["My refund has not arrived", "Where is my refund?", "refund please",
             "The delivery is late", "late delivery again", "Hello",
             "我要退款", "退款还没到账"]
    found = dict(keywords(texts))
    assert found["refund"] == 3 and found["delivery"] == 2 and found["late"] == 2
    assert found["退款"] == 2
    assert "hello" not in found  # said once: not frequent
