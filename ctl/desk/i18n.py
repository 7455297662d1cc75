"""The desk's strings: `i18n/<lang>/<module>.json` files merged into one table per
language, keyed `<module>.<name>`, and the language a browser gets."""

from __future__ import annotations

import functools
import json
from pathlib import Path

from ctl.errors import NotFound

ROOT = Path(__file__).parent / "i18n"
LANGUAGES = ("en", "zh-CN")
DEFAULT = "en"


@functools.cache
def strings(lang: str) -> dict[str, str]:
    """Every module's strings for `lang`. A file's keys may be bare (`answer`) or carry
    its module (`softphone.answer`); both end up as `<module>.<name>`."""
    if lang not in LANGUAGES:
        raise NotFound(f"no desk language {lang!r} (there are {', '.join(LANGUAGES)})")
    table: dict[str, str] = {}
    for path in sorted((ROOT / lang).glob("*.json")):
        module = path.stem
        for key, text in json.loads(path.read_text(encoding="utf-8")).items():
            table[key if key.startswith(f"{module}.") else f"{module}.{key}"] = str(text)
    return table


def pick(*wanted: str | None, accept: str = "") -> str:
    """The first supported language among `wanted` (an explicit choice, a setting), else
    the best of an Accept-Language header, else English."""
    for lang in wanted:
        if lang in LANGUAGES:
            return lang
    ranked = []
    for i, part in enumerate(accept.split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        ranked.append((-q, i, tag.strip().lower()))
    for _, _, tag in sorted(ranked):
        if tag.startswith("zh"):
            return "zh-CN"
        if tag.startswith("en"):
            return "en"
    return DEFAULT
