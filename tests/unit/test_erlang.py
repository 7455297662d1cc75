"""Erlang C against textbook figures and against the closed form computed independently."""

from __future__ import annotations

import math
from fractions import Fraction
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ctl.routing.erlang import agents_for, erlang_b, erlang_c, figures, plan, traffic


def closed_form_c(agents: int, erlangs: Fraction) -> Fraction:
    """Erlang C from its textbook definition, in exact rational arithmetic:
    C = (A^N / N!) (N / (N - A)) / (sum_{k<N} A^k / k! + (A^N / N!) (N / (N - A)))."""
    top = erlangs ** agents / math.factorial(agents) * agents / (agents - erlangs)
    return top / (sum(erlangs ** k / math.factorial(k) for k in range(agents)) + top)


def test_textbook_example_100_calls_per_half_hour() -> None:
    # 100 calls in 30 minutes (200/h), 3 minutes AHT: 10 erlangs; 80% within 20 s needs
    # 14 agents, who wait 17.4% of the time, answer 88.8% within 20 s, ASA 7.8 s.
    assert traffic(200, 180) == pytest.approx(10.0)
    f = figures(14, 200, 180, 20)
    assert f.p_wait == pytest.approx(0.1741, abs=5e-5)
    assert f.service_level == pytest.approx(0.8884, abs=5e-4)
    assert f.asa == pytest.approx(7.84, abs=5e-3)
    assert f.occupancy == pytest.approx(10 / 14)
    assert agents_for(200, 180, 20, 0.8) == 14
    assert figures(13, 200, 180, 20).service_level < 0.8


def test_small_exact_value() -> None:
    # A = 2, N = 3: C = (8/6 * 3) / (1 + 2 + 2 + 4) = 4/9; ASA = C * AHT / (N - A).
    assert erlang_c(3, 2.0) == pytest.approx(4 / 9, rel=1e-12)
    f = figures(3, 2 * 3600 / 100, 100, 0)
    assert f.asa == pytest.approx(4 / 9 * 100, rel=1e-12)
    assert f.service_level == pytest.approx(5 / 9, rel=1e-12)  # threshold 0: not waiting


@given(st.integers(1, 60), st.integers(1, 400))
def test_recurrence_matches_closed_form(agents: int, tenths: int) -> None:
    a = Fraction(tenths, 10)
    if a >= agents:
        assert erlang_c(agents, float(a)) == 1.0
        return
    assert erlang_c(agents, float(a)) == pytest.approx(float(closed_form_c(agents, a)),
                                                       rel=1e-9)


def test_large_centres_do_not_overflow() -> None:
    c = erlang_c(5000, 4900.0)
    assert 0.0 < c < 1.0 and math.isfinite(c)
    assert 0.0 < erlang_b(20000, 19000.0) < 1.0
    n = agents_for(100_000, 300, 20, 0.9)  # 8,333 erlangs
    assert 8333 < n < 8500


@given(st.floats(1, 2000), st.floats(10, 900), st.floats(0, 120), st.integers(1, 40))
def test_service_level_is_monotone_in_agents(rate: float, aht: float, sla: float,
                                             extra: int) -> None:
    a = traffic(rate, aht)
    base = math.floor(a) + 1
    levels = [figures(n, rate, aht, sla).service_level for n in range(base, base + extra)]
    asas = [figures(n, rate, aht, sla).asa for n in range(base, base + extra)]
    assert all(x <= y + 1e-12 for x, y in pairwise(levels))
    assert all(x >= y - 1e-12 for x, y in pairwise(asas))


@given(st.floats(1, 3000), st.floats(10, 900), st.floats(1, 120), st.floats(0.05, 0.99),
       st.floats(0.3, 1.0))
def test_agents_for_is_the_fewest_that_meet_the_target(rate: float, aht: float, sla: float,
                                                       target: float, occ: float) -> None:
    n = agents_for(rate, aht, sla, target, occ)
    f = figures(n, rate, aht, sla)
    assert f.service_level >= target and f.occupancy <= occ
    if n > 1:
        g = figures(n - 1, rate, aht, sla)
        assert g.service_level < target or g.occupancy > occ


def test_overloaded_queue_waits_forever() -> None:
    f = figures(10, 200, 180, 20)  # 10 erlangs on 10 agents
    assert (f.p_wait, f.service_level, f.asa) == (1.0, 0.0, math.inf)


def test_plan_with_occupancy_cap_and_shrinkage() -> None:
    p = plan(200, 180, 20, 0.8, max_occupancy=0.65, shrinkage=0.3)
    assert (p.by_service_level, p.needed.agents, p.scheduled) == (14, 16, 23)
    assert "the occupancy cap needs 16" in p.render()
    assert plan(300, 180, 20, 0.8, shrinkage=0.3).scheduled == math.ceil(
        agents_for(300, 180, 20, 0.8) / 0.7 - 1e-9)
    with pytest.raises(ValueError, match="target"):
        plan(200, 180, 20, 1.5)
