"""Intent from text: which intent's phrases best match what a caller said or wrote.

Works on English words and Chinese character bigrams (Chinese has no spaces, and a
bigram keeps "退款" apart from "退货" where single characters would not), so one
matcher serves both languages and mixed text.
"""

from __future__ import annotations

import difflib
import re
import unicodedata

# Below this a match is noise (a shared "the" or one shared character).
MIN_CONFIDENCE = 0.34

_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# A CJK run and a run of other letters/digits are separate tokens ("iPhone退款": two).
_TOKEN = re.compile(rf"[{_CJK}]+|[^\W_{_CJK}]+", re.UNICODE)
_IS_CJK = re.compile(rf"[{_CJK}]")
_STOP_WORDS = (
    "a an the i i'm im me my to of for and or please want would like could can you your is "
    "it its be do need with on in about this that just some 我 要 想 的 了 吗 呢 请 你 是")
_STOP = frozenset(_STOP_WORDS.split())


def normalize(text: str) -> str:
    """Case-, width- and punctuation-insensitive form: casefolded tokens joined by spaces."""
    return " ".join(_TOKEN.findall(unicodedata.normalize("NFKC", text).casefold()))


def tokens(text: str) -> list[str]:
    """Content tokens: English words without stop words (plural s dropped), Chinese bigrams."""
    return [w[:-1] if len(w) > 3 and w.endswith("s") else w for w in words(text)]


def words(text: str) -> list[str]:
    """Content words as written: English words casefolded without stop words, Chinese
    runs as bigrams (ctl/knowledge stems the English ones its own way)."""
    out: list[str] = []
    for run in _TOKEN.findall(unicodedata.normalize("NFKC", text).casefold()):
        if _IS_CJK.match(run):
            out.extend(_bigrams(run))
        elif run not in _STOP:
            out.append(run)
    return out


def _bigrams(run: str) -> list[str]:
    if len(run) == 1:
        return [] if run in _STOP else [run]
    return [run[i:i + 2] for i in range(len(run) - 1)]


def _same(a: str, b: str) -> bool:
    # Misspellings and near-misses of recognisers ("refnd", "cancelled") still count.
    if a == b:
        return True
    if len(a) < 4 or len(b) < 4 or _IS_CJK.match(a):
        return False
    return difflib.SequenceMatcher(None, a, b).ratio() >= 0.8


def _contains(said: str, wanted: str) -> bool:
    """Whether normalised `wanted` stands whole in normalised `said` (zh has no spaces)."""
    return f" {wanted} " in f" {said} " or bool(_IS_CJK.search(wanted) and wanted in said)


def phrase_score(text: str, phrase: str) -> float:
    """1.0 when the phrase occurs whole in the text, else the overlap of content tokens."""
    said, wanted = normalize(text), normalize(phrase)
    if not wanted:
        return 0.0
    if _contains(said, wanted):
        return 1.0
    t, p = tokens(text), tokens(phrase)
    if not t or not p:
        return 0.0
    hits = sum(1 for w in p if any(_same(w, x) for x in t))
    if hits == len(p):
        return 0.9  # every word of the phrase, in another order or with others between
    return 2 * hits / (len(p) + len(t))  # Dice: penalises both missing and extra words


def _best_phrase(text: str, phrases: list[str]) -> tuple[float, str]:
    """The best score of `phrases` in `text`; among whole matches, the longest phrase."""
    return max(((phrase_score(text, p), normalize(p)) for p in phrases),
               key=lambda sp: (sp[0], len(sp[1]) if sp[0] == 1.0 else 0), default=(0.0, ""))


def match_intent(text: str, intents: dict[str, list[str]]) -> tuple[str | None, float]:
    """The intent whose phrases best match `text` (case/punctuation-insensitive, zh and
    en), and a confidence 0..1; (None, 0.0) when nothing matches."""
    scored = [(*_best_phrase(text, phrases), name) for name, phrases in intents.items()]
    # A whole phrase that contains another ("cancel my order" and "cancel") is the more
    # specific answer: it wins, and the phrase inside it is no rival.
    scored.sort(key=lambda s: (s[0], len(s[1]) if s[0] == 1.0 else 0), reverse=True)
    if not scored or scored[0][0] <= 0.0:
        return None, 0.0
    best, said, name = scored[0]
    runner_up = next((score for score, phrase, _ in scored[1:]
                      if not (best == score == 1.0 and _contains(said, phrase))), 0.0)
    # Two intents matching alike make the answer a guess: confidence drops with the margin.
    confidence = round(best - 0.5 * runner_up * (runner_up / best), 4)
    if confidence < MIN_CONFIDENCE:
        return None, 0.0
    return name, confidence
