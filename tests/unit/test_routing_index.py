"""The agent index lists agents in each policy's order, ids breaking ties, as they change."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ctl.routing.model import AgentConfig, AgentStatus, Policy, ProfileEntry, QueueConfig
from ctl.routing.policies import AgentIndex, AgentRt

QUEUES = {p.value: QueueConfig(p.value, policy=p) for p in Policy}
SKILLS = ("x", "y")
# Ids of every length, prefixes of one another and with NULs among them; times that tie,
# negative zero included.
_IDS = st.text(st.sampled_from("ab\0é\U0001f600"), min_size=1, max_size=12)
_TIMES = st.sampled_from([0.0, -0.0, 1.0, -2.5, 1e300, 3.25]) | st.floats(-1e6, 1e6)
_CHANGE = st.tuples(st.integers(0, 30), _TIMES, st.integers(0, 3), st.integers(0, 2))


def _expected(agent: AgentRt, policy: Policy, skill: str | None) -> tuple[Any, ...]:
    """The order of the tuple keys the index used to keep."""
    cfg = agent.config
    if policy is Policy.ROUND_ROBIN:
        return (agent.last_offer, cfg.id)
    if policy is Policy.LEAST_OCCUPIED:
        return (agent.occupancy(), agent.idle_since, cfg.id)
    if policy is Policy.HIGHEST_PROFICIENCY and skill is not None:
        return (-cfg.skills.get(skill, 0), agent.idle_since, cfg.id)
    return (agent.idle_since, cfg.id)


@settings(max_examples=300, deadline=None)
@given(st.lists(_IDS, min_size=1, max_size=30, unique=True),
       st.lists(st.integers(-3, 5), min_size=60, max_size=60),
       st.lists(_CHANGE, max_size=40))
def test_candidates_come_in_the_policys_order(ids: list[str], levels: list[int],
                                               changes: list[tuple[int, float, int, int]]
                                               ) -> None:
    index = AgentIndex()
    agents: list[AgentRt] = []
    for n, agent_id in enumerate(ids):
        skills = dict(zip(SKILLS, levels[2 * n:2 * n + 2], strict=True))
        cfg = AgentConfig(agent_id, skills=skills,
                          profile=tuple(ProfileEntry(q) for q in QUEUES),
                          capacity={"chat": 3})
        agent = AgentRt(cfg, 0.0)
        agent.state = AgentStatus.AVAILABLE
        agents.append(agent)
    for agent in agents:
        index.reindex(agent, QUEUES)
    for who, when, offer, held in [(0, 0.0, 0, 0), *changes]:
        agent = agents[who % len(agents)]
        agent.idle_since, agent.last_offer = when, offer
        while agent.total < held:
            agent.take("chat", f"c{agent.total}")
        while agent.total > held:
            agent.free("chat", f"c{agent.total - 1}")
        index.reindex(agent, QUEUES)
        routable = [a for a in agents if a.total < 3]
        for queue in QUEUES.values():
            for skill in (None, *SKILLS):
                got = list(index.lists.get((queue.name, "chat") if skill is None
                                           else (queue.name, "chat", skill), []))
                want = sorted(routable, key=lambda a: _expected(a, queue.policy, skill))
                assert got == [a.config.id for a in want], (queue.policy, skill)
