"""Keyword search in Chinese and English, the same on SQLite and PostgreSQL.

Why an inverted index of our own (`article_terms`) rather than SQLite FTS5 and
PostgreSQL's tsvector: neither splits Chinese (FTS5's unicode61 takes a run of hanzi as
one token and its trigram tokenizer cannot find two-character words like 退款;
PostgreSQL needs the zhparser extension), so we would feed both our own bigrams anyway;
and two engines rank differently, so an answer would depend on the database. One table
of (article, term, count), written in the article's own transaction, gives the same
terms and the same BM25 ranking on both: candidates come from one indexed lookup of the
query's terms, and scoring them in Python costs microseconds each at a contact center's
scale (thousands of articles, not millions).

Terms are ctl/speech/nlp.py's tokens (English words casefolded without stop words,
Chinese character bigrams) with English suffixes trimmed, so "refunded", "refunds" and
"refund" are one term.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ctl.speech import nlp

TITLE_WEIGHT = 3  # a term in the title or a tag counts as three in the body
MAX_QUERY_TERMS = 40  # a suggestion's query is a whole conversation: its commonest terms
_K1, _B = 1.2, 0.75  # BM25's usual constants
_PLURAL = re.compile(r"(?:(?<=[sxz])es|(?<=[cs]h)es|(?<![su])s)$")
_SUFFIX = re.compile(r"(?<=[a-z]{3})(?:ing|ed)$|(?<=[a-z]{4})ly$")
_DOUBLE = re.compile(r"(?<=[a-z]{2})([b-df-hj-np-tv-z])\1$")


def stem(word: str) -> str:
    """Light English stemming: plurals, -ing, -ed, -ly, a final e and a final double
    consonant (so "cancelled" and "cancel", "charged" and "charges", "shipping" and "ship"
    meet). A Porter stemmer would join more words, some wrongly, for little gain in
    short help articles."""
    if not word.isascii() or len(word) < 4:
        return word
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    word = _SUFFIX.sub("", _PLURAL.sub("", word, count=1), count=1)
    if len(word) >= 5 and word.endswith("e"):
        word = word[:-1]
    return _DOUBLE.sub(r"\1", word) if len(word) >= 4 else word


def terms(text: str) -> list[str]:
    """The terms of a text, in order, repeats kept."""
    return [stem(t)[:64] for t in nlp.words(text)]


def query_terms(text: str) -> list[str]:
    """The distinct terms of a query, the most frequent first (capped)."""
    return [t for t, _ in Counter(terms(text)).most_common(MAX_QUERY_TERMS)]


def document_terms(title: str, body: str, tags: Iterable[str] = ()) -> Counter[str]:
    """Term -> weighted count for the index: title and tags weigh TITLE_WEIGHT."""
    counts = Counter(terms(body))
    for t in terms(" ".join([title, *tags])):
        counts[t] += TITLE_WEIGHT
    return counts


@dataclass(frozen=True)
class Corpus:
    """What BM25 needs of the collection searched."""

    size: int  # documents
    average_length: float
    frequency: Mapping[str, int]  # term -> documents holding it


def rank(query: list[str], docs: Mapping[str, tuple[Mapping[str, int], int]],
         corpus: Corpus) -> list[tuple[float, str]]:
    """(score, id) best first, for documents holding at least one query term; `docs` maps
    an id to (term -> count, length). A document holding more of the query's distinct
    terms is scaled up, so one with every word outranks one repeating a single word."""
    if not query:
        return []
    avg = corpus.average_length or 1.0
    idf = {t: math.log(1 + (corpus.size - n + 0.5) / (n + 0.5))
           for t in query if (n := corpus.frequency.get(t, 0))}
    out = []
    for doc_id, (counts, length) in docs.items():
        score, matched = 0.0, 0
        for t, weight in idf.items():
            tf = counts.get(t, 0)
            if tf:
                matched += 1
                score += weight * tf * (_K1 + 1) / (tf + _K1 * (1 - _B + _B * length / avg))
        if matched:
            out.append((round(score * matched / len(query), 6), doc_id))
    out.sort(key=lambda hit: (-hit[0], hit[1]))
    return out


def rank_texts(query: list[str], texts: Mapping[str, tuple[str, str]]
               ) -> list[tuple[float, str]]:
    """Rank a handful of small documents given whole, id -> (title, body): quick
    replies, which are few per agent and need no index."""
    docs = {k: (c, sum(c.values())) for k, (title, body) in texts.items()
            if (c := document_terms(title, body))}
    frequency: Counter[str] = Counter()
    for counts, _ in docs.values():
        frequency.update(counts.keys())
    size = len(docs)
    avg = sum(n for _, n in docs.values()) / size if size else 0.0
    return rank(query, docs, Corpus(size, avg, frequency))
