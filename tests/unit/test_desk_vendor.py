"""The committed JsSIP bundle is the one package-lock.json pins (`npm ci && npm run
vendor` rebuilds it); running ctl needs no Node, so a stale bundle would go unnoticed."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).parents[2]
BUNDLE = ROOT / "ctl/desk/static/vendor/jssip.js"


def test_the_vendored_jssip_is_the_locked_version() -> None:
    lock = json.loads((ROOT / "package-lock.json").read_text())
    locked = lock["packages"]["node_modules/jssip"]["version"]
    assert json.loads((ROOT / "package.json").read_text())["dependencies"]["jssip"] == locked
    text = BUNDLE.read_text()
    found = re.search(r'name:"jssip",title:"JsSIP",[^}]*?version:"([^"]+)"', text)
    assert found, f"{BUNDLE} does not carry JsSIP's package metadata"
    assert found.group(1) == locked
    assert "export default" in text[-200:]  # an ES module: softphone.js imports it
