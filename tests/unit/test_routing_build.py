"""The engine's core runs compiled (mypyc, setup.py) where it was built and current, and
from its sources anywhere else: both must pass the routing tests, the property tests
being the specification."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import ctl.routing
from ctl.routing import core, engine, model, policies, queues

ROUTING_TESTS = ["test_routing_engine.py", "test_routing_invariants.py",
                 "test_routing_consult.py", "test_simulate.py"]


def test_the_core_is_all_compiled_or_all_sources() -> None:
    files = [Path(m.__file__ or "") for m in (model, queues, policies, core, engine)]
    assert {f.suffix == ".py" for f in files} == {not ctl.routing.COMPILED}, files


def test_the_sources_pass_the_routing_tests_too() -> None:
    if not ctl.routing.COMPILED:
        pytest.skip("the sources are what ran the routing tests in this process")
    here = Path(__file__).parent
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         *(str(here / name) for name in ROUTING_TESTS)],
        env={**os.environ, "CTL_ROUTING_PURE": "1"}, cwd=here.parents[1],
        capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
