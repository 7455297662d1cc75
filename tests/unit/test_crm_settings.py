"""The CRM hook's settings: a URL template whose mistakes are named when settings load."""

from __future__ import annotations

import pytest

from ctl.errors import ConfigError
from ctl.settings import load_settings


def test_a_good_template_and_durations() -> None:
    s = load_settings(crm={"url": "https://crm.example/c?phone={phone}&mail={email}",
                           "timeout": "1.5s", "headers": {"Authorization": "Bearer x"}})
    assert s.crm.url is not None and s.crm.timeout == 1.5
    assert load_settings().crm.url is None  # no CRM unless configured


@pytest.mark.parametrize(("url", "words"), [
    ("https://crm/c?p={phone}{passport}", "unknown placeholder {passport}; use"),
    ("https://crm/c?p={phone", "https://crm/c?p={phone"),
    ("ftp://crm/c", "is not an http(s) URL"),
])
def test_mistakes_are_named(url: str, words: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_settings(crm={"url": url})
    assert "crm.url" in str(e.value) and words in str(e.value)
    with pytest.raises(ConfigError, match=r"crm\.timeout"):
        load_settings(crm={"timeout": "soon"})
