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


# Written after the lexicon and never used to tune it (the ones above were): what to
# expect on new text. Misses are kept: words the lexicon lacks ("crashes", "smashed",
# "离谱"), sarcasm ("a joke"), and "problem" read as negative in "problem solved".
HELD_OUT = [
    ("Thanks, have a nice day", "positive"),
    ("The new version works great, thank you so much", "positive"),
    ("Your colleague was really kind and sorted it out in minutes", "positive"),
    ("Brilliant support, problem solved", "positive"),
    ("I'm very happy with the quick delivery", "positive"),
    ("This is absolutely unacceptable, I've been waiting for weeks", "negative"),
    ("The app crashes every time I open it", "negative"),
    ("You took the payment twice from my card, this is a joke", "negative"),
    ("I'm filing a formal complaint about your driver", "negative"),
    ("the lamp arrived smashed", "negative"),
    ("I'm so annoyed, nobody replies to my emails", "negative"),
    ("What are your opening hours on Sunday", "neutral"),
    ("I need to change my email address", "neutral"),
    ("Can you give me a tracking number for order 5521", "neutral"),
    ("Do you have this jacket in blue?", "neutral"),
    ("谢谢\uff0c再见", "positive"),
    ("太好了\uff0c问题已经解决", "positive"),
    ("快递员很热情\uff0c点赞", "positive"),
    ("东西坏了\uff0c我要退款", "negative"),
    ("服务太差了\uff0c叫你们经理来", "negative"),
    ("等了一个星期还没到\uff0c太失望了", "negative"),
    ("为什么扣了两次钱\uff1f太离谱了", "negative"),
    ("今天天气怎么样", "neutral"),
    ("我想更改手机号", "neutral"),
    ("请帮我开一张发票", "neutral"),
    ("订单A12345什么时候发货", "neutral"),
]


def test_held_out_examples() -> None:
    """Measured 21/26 (en 11/15, zh 10/11): the floor is a little under."""
    wrong = [(t, want, sentiment(t)) for t, want in HELD_OUT if sentiment(t)[0] != want]
    en = [t for t, _ in HELD_OUT if t.isascii()]
    en_wrong = [w for w in wrong if w[0].isascii()]
    print(f"\nsentiment, held out: {len(HELD_OUT) - len(wrong)}/{len(HELD_OUT)} right "
          f"(en {len(en) - len(en_wrong)}/{len(en)}, zh "
          f"{len(HELD_OUT) - len(en) - len(wrong) + len(en_wrong)}/{len(HELD_OUT) - len(en)})"
          f"; wrong: {wrong}")
    assert 1 - len(wrong) / len(HELD_OUT) >= 0.75, wrong


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
