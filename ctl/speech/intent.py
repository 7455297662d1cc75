"""Intent of customer text (chat, email, SMS, WeChat, transcripts): rules, then meaning.

1. Rules: nlp.match_intent's phrase matching (whole phrases, every word of one, English
   words and Chinese bigrams). When a phrase's words are all there it is taken as is.
2. English text the rules are unsure of goes to the sentence-embedding model
   (embed.py): the intent of the nearest example phrase by cosine, if near enough —
   "my parcel never showed up" is about an order's whereabouts though it shares no
   word with "where is my order".
3. Chinese (and mixed) text stays with the rules: all-MiniLM-L6-v2 was trained on
   English pairs and its vocabulary is English word pieces; most Chinese characters are
   not in it at all ("我要退款" -> 我 [UNK] [UNK] [UNK]). Measured: 我要退款 ~ 把钱退给我
   0.96 only because both are mostly [UNK], while 取消订单 ~ 我不想要了 (same request)
   is 0.47 and 取消订单 ~ 这件衣服有蓝色的吗 (unrelated) 0.62. Bigrams do better.

Published IVR flows add examples: the phrases their `listen` steps give each intent
(`flows`), so a chat saying what a caller would say gets the same intent. The operator's
examples (settings' speech.intents, else DEFAULT_INTENTS) come first:
- a text they match surely (RULE_SURE) keeps their intent whatever the flows say;
- a flow phrase that is one of their examples under another intent is dropped, and one
  of fewer than two content words ("yes", "agent", "退款") is left out: in a flow it
  answers one question, in a chat it is a word of any sentence;
- otherwise the better rule match of the two sets wins, then the embedding model looks
  for the nearest example among both. A flow intent of the same name as an operator's
  adds phrases to it; another name is a new intent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from ctl.speech.nlp import match_intent, normalize, tokens

# The rules' confidence when every word of a phrase is in the text (nlp.phrase_score).
RULE_SURE = 0.85
# all-MiniLM-L6-v2 cosines: paraphrases ~0.6-0.9, same topic ~0.4, unrelated < 0.2.
# Below this the nearest example is a different request: no match rather than a guess.
EMBED_THRESHOLD = 0.45
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")

# For text channels when the settings name none: what customers write to a shop's or a
# service's contact center. Settings' speech.intents replace these.
DEFAULT_INTENTS: dict[str, list[str]] = {
    "order_status": [
        "where is my order", "track my package", "has my order shipped",
        "when will my delivery arrive", "my parcel has not arrived", "delivery status",
        "订单到哪了", "查物流", "什么时候发货", "快递到哪里了", "还没收到货"],
    "refund": [
        "I want a refund", "give me my money back", "refund my order",
        "how do I return an item", "return the product for a refund",
        "退款", "我要退款", "把钱退给我", "申请退货退款", "怎么退货"],
    "cancel": [
        "cancel my order", "cancel my subscription", "I don't want it anymore",
        "stop my membership", "取消订单", "取消订阅", "不想要了", "取消会员"],
    "billing": [
        "I was charged twice", "question about my bill", "send me the invoice",
        "my payment failed", "wrong amount on my credit card",
        "扣了两次钱", "账单有问题", "开发票", "付款失败", "扣费不对"],
    "technical": [
        "the app does not work", "I can't log in", "the website shows an error",
        "reset my password", "the app keeps crashing",
        "登录不了", "打不开", "页面报错", "忘记密码", "应用闪退"],
    "change_details": [
        "change my delivery address", "update my phone number",
        "change the email on my account", "修改收货地址", "更改手机号", "修改账户信息"],
    "complaint": [
        "I want to make a complaint", "I want to speak to a manager",
        "this service is unacceptable", "我要投诉", "找你们经理", "服务太差了"],
    "agent": [
        "talk to a person", "speak to a human agent", "connect me to customer service",
        "转人工", "人工客服", "找客服"],
}


@dataclass(frozen=True, slots=True)
class Intent:
    name: str | None  # None: no intent matched
    confidence: float
    method: str  # "rules" | "flow" (a flow's phrase) | "embedding" | "none"

    def as_dict(self) -> dict[str, Any]:
        return {"intent": self.name, "confidence": self.confidence, "method": self.method}


class IntentModel:
    """Intents -> their example phrases, and the flows' (module docstring: precedence);
    `embedding=False` is the rules alone."""

    def __init__(self, intents: dict[str, list[str]], embedding: bool = True,
                 threshold: float = EMBED_THRESHOLD,
                 flows: dict[str, list[str]] | None = None) -> None:
        self.intents = {k: list(v) for k, v in intents.items()}
        self.given_flows = {k: list(v) for k, v in (flows or {}).items()}
        self.flows = flow_examples(self.intents, self.given_flows)
        self.embedding, self.threshold = embedding, threshold
        examples = [(name, p) for table in (self.intents, self.flows)
                    for name, ps in table.items() for p in ps if not _CJK.search(p)]
        self._labels = [name for name, _ in examples]
        self._phrases = [p for _, p in examples]
        self._vectors: np.ndarray[Any, np.dtype[np.float32]] | None = None

    def prepare(self) -> int:
        """Embed the examples now (a flow was published) rather than on the next text;
        the number of examples."""
        if self.embedding and self._phrases and self._vectors is None:
            self._vectors = _cached(self._phrases)
        return len(self._phrases)

    def classify(self, texts: list[str]) -> list[Intent]:
        """One Intent per text; the model sees only those the rules leave open, in one
        batch."""
        out: list[Intent] = []
        unsure: list[int] = []
        for i, text in enumerate(texts):
            name, confidence = match_intent(text, self.intents)
            method = "rules"
            if confidence < RULE_SURE and self.flows:
                other, sure = match_intent(text, self.flows)
                if sure > confidence:
                    name, confidence, method = other, sure, "flow"
            out.append(Intent(name, confidence, method) if name else
                       Intent(None, 0.0, "none"))
            if (self.embedding and self._labels and confidence < RULE_SURE
                    and not _CJK.search(text) and text.strip()):
                unsure.append(i)
        if unsure:
            for i, found in zip(unsure, self._nearest([texts[i] for i in unsure]),
                                strict=True):
                if found.name is not None or out[i].name is None:
                    out[i] = found
        return out

    def _nearest(self, texts: list[str]) -> list[Intent]:
        from ctl.speech.embed import embed  # the model loads only when text needs it

        if self._vectors is None:
            self._vectors = _cached(self._phrases)
        cosines = embed(texts) @ self._vectors.T
        found = []
        for row in cosines:
            best = int(row.argmax())
            score = float(row[best])
            found.append(Intent(self._labels[best], round(score, 4), "embedding")
                         if score >= self.threshold else Intent(None, 0.0, "none"))
        return found


def flow_examples(intents: dict[str, list[str]], flows: dict[str, list[str]]
                  ) -> dict[str, list[str]]:
    """The flows' phrases that join the text examples (module docstring: which, why)."""
    owner = {normalize(p): name for name, ps in intents.items() for p in ps}
    out: dict[str, list[str]] = {}
    for name, phrases in sorted(flows.items()):
        for p in phrases:
            key = normalize(p)
            if key in owner or len(tokens(p)) < 2:
                continue
            owner[key] = name
            out.setdefault(name, []).append(p)
    return out


# Vectors of example phrases, per process: a publish embeds only the phrases it adds.
_vectors: dict[str, np.ndarray[Any, np.dtype[np.float32]]] = {}
_MAX_CACHED = 20_000


def _cached(phrases: list[str]) -> np.ndarray[Any, np.dtype[np.float32]]:
    from ctl.speech.embed import embed

    new = sorted({p for p in phrases if p not in _vectors})
    if len(_vectors) + len(new) > _MAX_CACHED:
        _vectors.clear()  # flows' phrases come and go; a bound beats a slow leak
        new = sorted(set(phrases))
    if new:
        _vectors.update(zip(new, embed(new), strict=True))
    return np.stack([_vectors[p] for p in phrases])
