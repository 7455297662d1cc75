"""Recognisers restricted to a flow's phrases: pocketsphinx with JSGF grammars (its bundled
en-US model), vosk with a phrase list (an operator's model, any language).

Each decoder is used by one recognition at a time, in a worker thread: decoding is CPU
work that must not hold up the event loop's other calls.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from ctl.speech.audio import RATE
from ctl.speech.nlp import match_intent, normalize

# Words callers wrap around what they want ("I'd like to ... please"): the grammar lets
# them pass without forcing them onto a phrase. Each filler word costs decoding time (30
# made recognition ~4x slower than these 10 for no better accuracy).
FILLER = ("i", "a", "the", "to", "please", "my", "would", "like", "want", "can")


class Decoder(Protocol):
    def decode(self, pcm: bytes, intents: Mapping[str, list[str]], quick: bool = False
               ) -> str:
        """The words heard in `pcm` (16 kHz mono PCM), "" if nothing fits the phrases.
        `quick`: the first pass only (the phrases with filler words), a guess made while
        the caller may still go on; what it finds is what the whole decoding returns."""


def grammar_phrases(intents: Mapping[str, list[str]], known: Any = None) -> list[str]:
    """Every phrase, normalised, without those a dictionary cannot spell (`known(word)`)."""
    out: list[str] = []
    for phrases in intents.values():
        for phrase in phrases:
            words = normalize(phrase)
            if words and (known is None or all(known(w) for w in words.split())):
                out.append(words)
    return sorted(set(out))


def has_phrase(heard: str, phrases: list[str]) -> bool:
    return any(f" {p} " in f" {heard} " for p in phrases)


def complete(heard: str, intents: Mapping[str, list[str]]) -> bool:
    """Whether `heard` ends with a whole phrase (then filler words only) and cannot be the
    start of a longer phrase: the grammar then has nothing more to wait for, so a short
    pause ends the utterance. "cancel" is not complete while "cancel my order" is a
    phrase: a caller pausing after "cancel" may be halfway through it."""
    words = heard.split()
    phrases = [p.split() for p in grammar_phrases(intents)]
    core = list(words)
    while core and core[-1] in FILLER:
        core.pop()
    if not any(len(p) <= len(core) and core[len(core) - len(p):] == p for p in phrases):
        return False
    return not any(words[len(words) - k:] == p[:k] for p in phrases
                   for k in range(1, min(len(p), len(words) + 1)))


def jsgf(phrases: list[str], filler: bool) -> str:
    alts = " | ".join(f"( {p} )" for p in phrases)
    if not filler:
        return f"#JSGF V1.0;\ngrammar ctl;\npublic <utt> = ( {alts} );\n"
    return (f"#JSGF V1.0;\ngrammar ctl;\n<f> = {' | '.join(FILLER)};\n"
            f"public <utt> = [<f>+] ( {alts} ) [<f>+];\n")


class Pocketsphinx:
    """pocketsphinx with two grammars per intent set: the phrases with filler words around
    them; when that finds no phrase, the phrases alone, trusted only if free-form decoding
    of the same audio hears that intent too (a bare grammar forces any speech onto some
    phrase: 6 of 10 unrelated sentences were taken for an intent, 2 with this check)."""

    def __init__(self) -> None:
        from pocketsphinx import Decoder as PsDecoder

        # Narrower beams: ~3x faster on grammars, the same phrases found.
        self._ps = PsDecoder(lm=None, loglevel="FATAL", beam=1e-30, wbeam=1e-20, pbeam=1e-30)
        self._free: FreeForm | None = None
        self._grammars: set[str] = set()
        self._lock = threading.Lock()

    def _known(self, word: str) -> bool:
        return self._ps.lookup_word(word) is not None

    def decode(self, pcm: bytes, intents: Mapping[str, list[str]], quick: bool = False
               ) -> str:
        with self._lock:
            phrases = grammar_phrases(intents, self._known)
            if not phrases:
                return ""
            key = hashlib.sha1("\n".join(phrases).encode()).hexdigest()[:16]
            if key not in self._grammars:
                self._ps.add_jsgf_string(f"f{key}", jsgf(phrases, filler=True))
                self._ps.add_jsgf_string(f"p{key}", jsgf(phrases, filler=False))
                self._grammars.add(key)
            heard = self._run(f"f{key}", pcm)
            if quick or has_phrase(heard, phrases):
                return heard
            forced = self._run(f"p{key}", pcm)
            if self._free is None:
                self._free = FreeForm()
            free = self._free.decode(pcm, intents)
            intent, _ = match_intent(forced, dict(intents))
            if intent is not None and match_intent(free, {intent: list(intents[intent])})[0]:
                return forced
            return free

    def _run(self, search: str, pcm: bytes) -> str:
        self._ps.activate_search(search)
        self._ps.start_utt()
        # full_utt: cepstral mean normalisation over the whole utterance; the live
        # estimate, starting from the model's default, loses short phrases (~15% fewer
        # right on call audio).
        self._ps.process_raw(pcm, False, True)
        self._ps.end_utt()
        hyp = self._ps.hyp()
        return str(hyp.hypstr) if hyp is not None else ""


class Vosk:
    """vosk with the flow's phrases as its grammar; "[unk]" takes whatever else was said."""

    def __init__(self, model_dir: Path) -> None:
        import vosk

        vosk.SetLogLevel(-1)
        if not model_dir.is_dir():
            raise FileNotFoundError(f"vosk model directory {model_dir} does not exist")
        self._model = vosk.Model(str(model_dir))
        self._lock = threading.Lock()

    def decode(self, pcm: bytes, intents: Mapping[str, list[str]], quick: bool = False
               ) -> str:
        phrases = grammar_phrases(intents)
        with self._lock:
            heard = self._run(pcm, [*phrases, "[unk]"]) if phrases else ""
            if quick:
                return heard
            # Phrases outside the model's vocabulary leave the grammar empty (vosk drops
            # them with a warning): then free-form decoding, and the intent matcher judges.
            return heard or self._run(pcm, None)

    def _run(self, pcm: bytes, grammar: list[str] | None) -> str:
        import vosk

        rec = vosk.KaldiRecognizer(self._model, RATE, *([json.dumps(grammar)] if grammar
                                                         else []))
        rec.AcceptWaveform(pcm)
        text = str(json.loads(rec.FinalResult()).get("text", ""))
        return re.sub(r"\s*\[unk\]\s*", " ", text).strip()


class FreeForm:
    """pocketsphinx with its bundled en-US language model: any words (post-call
    transcripts; weaker than a grammar on telephone audio)."""

    def __init__(self) -> None:
        from pocketsphinx import Decoder as PsDecoder

        self._ps = PsDecoder(loglevel="FATAL")

    def decode(self, pcm: bytes, intents: Mapping[str, list[str]], quick: bool = False
               ) -> str:
        self._ps.start_utt()
        self._ps.process_raw(pcm, False, True)
        self._ps.end_utt()
        hyp = self._ps.hyp()
        return str(hyp.hypstr) if hyp is not None else ""


_LOADED: dict[str, Decoder] = {}  # per worker process: models load once


def decode_in_worker(model: str, pcm: bytes, intents: Mapping[str, list[str]],
                     quick: bool = False) -> str:
    """Entry point of the recognisers' worker processes: `model` is "pocketsphinx",
    "pocketsphinx-free" or a vosk model directory (free-form when `intents` is empty)."""
    decoder = _LOADED.get(model)
    if decoder is None:
        decoder = _LOADED[model] = Pocketsphinx() if model == "pocketsphinx" \
            else FreeForm() if model == "pocketsphinx-free" else Vosk(Path(model))
    return decoder.decode(pcm, intents, quick)
