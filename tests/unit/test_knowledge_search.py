"""Knowledge search terms, BM25 ranking and quick-reply variables, without a database."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ctl.errors import BadRequest
from ctl.knowledge import search, variables
from ctl.speech import nlp


@pytest.mark.parametrize(("forms", "term"), [
    (["refund", "refunds", "refunded", "Refunding"], "refund"),
    (["ship", "shipping", "shipped"], "ship"),
    (["cancel", "canceled", "cancelled", "cancels"], "cancel"),
    (["charge", "charged", "charges"], "charg"),
    (["address", "addresses"], "addres"),
    (["policy", "policies"], "policy"),
    (["box", "boxes"], "box"),
])
def test_english_inflections_meet(forms: list[str], term: str) -> None:
    assert {t for f in forms for t in search.terms(f)} == {term}


def test_chinese_is_bigrams_and_mixed_text_splits_by_script() -> None:
    assert search.terms("我要退款") == ["我要", "要退", "退款"]
    assert search.terms("iPhone退款, please") == ["iphon", "退款"]  # "please" is a stop word
    assert nlp.tokens("iPhone退款") == ["iphone", "退款"]  # the one tokenizer, shared


def test_query_terms_are_distinct_and_capped() -> None:
    assert search.query_terms("refund refund refunds 退款 退款") == ["refund", "退款"]
    many = " ".join(f"word{i}" for i in range(100))
    assert len(search.query_terms(many)) == search.MAX_QUERY_TERMS


def _rank(query: str, docs: dict[str, tuple[str, str]]) -> list[str]:
    return [d for _, d in search.rank_texts(search.query_terms(query), docs)]


def test_ranking_prefers_every_word_then_the_title_then_the_rarer_word() -> None:
    docs = {"both": ("Orders", "how to refund an order"),
            "one": ("Refund", "refund refund refund"),
            "none": ("Passwords", "reset a password")}
    assert _rank("refund order", docs) == ["both", "one"]
    titled = {"title": ("Refund policy", "rules"), "body": ("Rules", "the refund policy")}
    assert _rank("refund", titled) == ["title", "body"]
    rare = {"common": ("a", "order status"), "rare": ("b", "order invoice"),
            "other": ("c", "order tracking")}
    assert _rank("order invoice", rare)[0] == "rare"
    assert _rank("退款", {"zh": ("退款政策", "原路退款"), "en": ("Refund", "refund")}) == ["zh"]
    assert _rank("", docs) == []


_WORDS = st.sampled_from(["refund", "order", "invoice", "password", "delivery", "退款",
                          "订单", "发票", "密码", "物流", "账户"])


@given(st.lists(st.lists(_WORDS, min_size=1, max_size=8), min_size=1, max_size=12),
       st.data())
def test_a_document_holding_every_query_word_is_ranked(docs: list[list[str]],
                                                        data: st.DataObject) -> None:
    texts = {str(i): ("", " ".join(words)) for i, words in enumerate(docs)}
    target = data.draw(st.sampled_from(sorted(texts)))
    query = data.draw(st.lists(st.sampled_from(docs[int(target)]), min_size=1))
    ranked = search.rank_texts(search.query_terms(" ".join(query)), texts)
    assert target in [d for _, d in ranked]
    best = ranked[0][0]  # nothing holding fewer of the words outranks a full match
    assert all(score <= best for score, _ in ranked)


def test_variables_are_checked_when_saved() -> None:
    variables.check("Hi {{ customer.name or 'there' }}, ticket #{{ ticket.number }}")
    with pytest.raises(BadRequest, match=r"unknown variable custmer .*customer\.name"):
        variables.check("Hi {{ custmer.name }}")
    with pytest.raises(BadRequest, match=r"unknown variable customer\.nmae"):
        variables.check("Hi {{ customer.nmae }}")
    with pytest.raises(BadRequest, match="invalid"):
        variables.check("Hi {{ customer.name ")
    with pytest.raises(BadRequest, match=r"unknown variable customer\.__class__"):
        variables.check("{{ customer.__class__ }}")
    with pytest.raises(BadRequest, match="unsafe"):
        variables.check("{{ customer.name.__class__ }}")


def test_rendering_fills_values_and_empties_missing_ones() -> None:
    values = {"customer": {"name": None}, "agent": {"name": "Alice"}}
    assert variables.render("Hi {{ customer.name or 'there' }}, {{ agent.name }} here",
                            values) == "Hi there, Alice here"
    assert variables.render("{{ customer.name }}!", values) == "!"
    assert variables.render("no variables {", {}) == "no variables {"
