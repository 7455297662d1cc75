"""The desk's language: an explicit choice, then the agent's setting, then the browser's
Accept-Language by preference; and every string in both languages."""

from __future__ import annotations

import re

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


def test_every_error_reason_the_server_names_is_worded() -> None:
    """Each `reason="..."` raised in ctl and adapters has its errors.json entry (the
    zh-CN desk would show the English message otherwise), with the same {params}."""
    root = i18n.ROOT.parents[2]
    raised = {m for folder in ("ctl", "adapters") for p in (root / folder).rglob("*.py")
              for m in re.findall(r'reason="([a-z_]+)"', p.read_text(encoding="utf-8"))}
    assert len(raised) > 15
    en, zh = i18n.strings("en"), i18n.strings("zh-CN")
    assert {k for k in en if k.startswith("errors.")} == {f"errors.{r}" for r in raised}
    for reason in raised:
        key = f"errors.{reason}"
        assert set(re.findall(r"\{\w+\}", en[key])) == set(re.findall(r"\{\w+\}", zh[key]))
