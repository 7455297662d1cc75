from __future__ import annotations

import json
import logging

from hypothesis import given
from hypothesis import strategies as st

from ctl.logs import JsonFormatter, ctx, mask_phones


def test_masks_e164_and_sip_uris_but_not_extensions_ports_or_channel_ids() -> None:
    assert "13812345678" not in mask_phones("call from +8613812345678")
    assert "5551234567" not in mask_phones("sip:+15551234567@127.0.0.1")
    for keep in ("ext 1000 port 5060", "channel 1700000000.12", "pid 123456"):
        assert mask_phones(keep) == keep
    # Digits joined by dashes or spaces are masked even when they are not a number:
    # "555-123-4567" must never leak, and over-masking a range costs nothing.
    assert "4567" not in mask_phones("tel 555-123-4567")[:-2]


@given(st.from_regex(r"\+[1-9][0-9]{9,13}", fullmatch=True))
def test_no_full_number_survives(number: str) -> None:
    out = mask_phones(f"caller={number} done")
    assert number not in out
    assert out.startswith("caller=" + number[:3])


def test_json_lines_mask_context_fields_too() -> None:
    record = logging.LogRecord("ctl", logging.INFO, __file__, 1, "call from %s", ("+15551234567",),
                               None)
    record.__dict__.update(ctx(caller="+15551234567", channel="1700000000.1"))
    line = json.loads(JsonFormatter().format(record))
    assert "5551234567" not in json.dumps(line)
    assert line["channel"] == "1700000000.1"
