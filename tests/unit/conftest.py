"""Unit tests run without any CTL_* variable, whatever ran before them.

CTL_* variables win over load_settings() overrides, so a leftover CTL_DATA_DIR would make a
unit test render its Asterisk files into that directory. In one pytest session the
integration fixtures export the session Asterisk's CTL_* (session scope), and a unit test
that ran after them rewrote the running Asterisk's config (as root:root, unreadable to
Asterisk) and broke the next PJSIP reload. A developer's own CTL_* would do the same.
"""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _no_ctl_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("CTL_")]:
        monkeypatch.delenv(name)
