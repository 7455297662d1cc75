"""The desk's language: an explicit choice, then the agent's setting, then the browser's
Accept-Language by preference; and every string in both languages."""

from __future__ import annotations

import pytest

from ctl.desk import i18n
from ctl.errors import NotFound


@pytest.mark.parametrize(("wanted", "accept", "got"), [
    (("zh-CN",), "en", "zh-CN"),
    ((None, "en"), "zh-CN", "en"),
    (("fr", None), "zh-CN,zh;q=0.9,en;q=0.5", "zh-CN"),
    ((), "en-GB;q=0.4, zh-TW;q=0.8", "zh-CN"),
    ((), "fr-FR, en;q=0.3, zh;q=0.2", "en"),
    ((), "de, fr", "en"),
    ((), "zh;q=bogus, en", "en"),
    ((), "", "en"),
])
def test_pick(wanted: tuple[str | None, ...], accept: str, got: str) -> None:
    assert i18n.pick(*wanted, accept=accept) == got


def test_every_key_in_both_languages() -> None:
    en, zh = i18n.strings("en"), i18n.strings("zh-CN")
    assert set(en) == set(zh), sorted(set(en) ^ set(zh))
    assert {p.name for p in (i18n.ROOT / "en").glob("*.json")} == \
        {p.name for p in (i18n.ROOT / "zh-CN").glob("*.json")}
    with pytest.raises(NotFound, match="no desk language 'fr'"):
        i18n.strings("fr")
