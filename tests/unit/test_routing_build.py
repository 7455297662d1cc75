"""The engine's core runs compiled (mypyc, setup.py) where it was built and current, and
from its sources anywhere else: both must pass the routing tests, the property tests
being the specification."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import ctl.routing
from ctl.routing import core, engine, model, policies, queues, rankheap, ranklist

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


_HEAPS = [rankheap.RankHeap]
if ctl.routing.NATIVE_HEAP:
    from ctl.routing._rankheap import RankHeap

    _HEAPS.append(RankHeap)
_PLACE = st.tuples(st.integers(-600, 600), st.floats(-1e10, 1e10) | st.sampled_from([0.0, 1.5]),
                   st.integers(0, 50))


@given(st.lists(st.none() | _PLACE, max_size=60))
def test_the_heaps_pop_the_least_order_first(ops: list[tuple[int, float, int] | None]) -> None:
    """rankheap.RankHeap and, where built, its C twin (which compares ranks first, orders
    on a tie: ties included here, and duplicates) against a sorted list."""
    for make in _HEAPS:
        heap, model = make(), []
        for op in ops:
            if op is None:
                if model:
                    assert heap.pop() == ("item", model.pop(0))
            else:
                order = queues.order_key(*op)
                heap.push(queues.rank_of(order), order, ("item", order))
                model = sorted([*model, order])
            assert heap.peek() == (("item", model[0]) if model else None)
            assert len(heap) == len(model) and sorted(heap.orders()) == model
            assert sorted(map(repr, heap.items())) == sorted(repr(("item", o)) for o in model)


_LISTS = [ranklist.RankList]
if ctl.routing.NATIVE_LIST:
    from ctl.routing._ranklist import RankList

    _LISTS.append(RankList)
# Ranks from one to 128 bits, both signs (policies.rank_code's range), ids with ties.
_RANKS = st.integers(-3, 3) | st.integers(-(2**127), 2**127 - 1) | st.sampled_from(
    [2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64, -(2**127), 2**127 - 1])
_IDS = st.text(st.sampled_from("ab\0é\U0001f600"), max_size=4)


@given(st.lists(st.tuples(st.booleans(), _RANKS, _IDS), max_size=60))
def test_the_rank_lists_keep_rank_then_id_order(ops: list[tuple[bool, int, str]]) -> None:
    """ranklist.RankList and, where built, its C twin against a sorted list of tuples:
    adds, and discards of entries there (the index only discards what it added) or not."""
    for make in _LISTS:
        listed, model = make(), []
        for add, rank, id in ops:
            if add:
                listed.add(rank, id)
                model = sorted([*model, (rank, id)])
            elif model and (rank, id) not in model:
                with pytest.raises(KeyError):
                    listed.discard(rank, id)
                rank, id = model[rank % len(model)]
                listed.discard(rank, id)
                model.remove((rank, id))
            assert list(listed) == [i for _, i in model] and len(listed) == len(model)


@pytest.mark.parametrize("name", ["_rankheap", "_ranklist"])
def test_the_c_twins_run_where_built(name: str) -> None:
    """Built by setup.py with the core: where the core runs compiled, so do they."""
    native = ctl.routing.NATIVE_HEAP if name == "_rankheap" else ctl.routing.NATIVE_LIST
    built = any((Path(ctl.routing.__file__).parent / f"{name}{s}").exists()
                for s in EXTENSION_SUFFIXES)
    assert built or not native
    assert native or not (built and ctl.routing.COMPILED)
