"""Checks of a parsed flow as a whole, before it may run: where each step leads, what can
be reached, loops a caller could never leave, prompts in every declared language, and the
queues, skills and flows it names."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field

from ctl.ivr.flow import Flow, FlowInvalid, Problem, Step
from ctl.ivr.verbs.base import Speech
from ctl.ivr.verbs.enqueue import Enqueue
from ctl.ivr.verbs.listen import Listen
from ctl.ivr.verbs.menu import Choice, Menu
from ctl.ivr.verbs.queue_status import QueueStatus
from ctl.ivr.verbs.transfer import Transfer


@dataclass(frozen=True)
class Known:
    """What exists outside the flow. None: not known here, not checked."""

    queues: frozenset[str] | None = None
    skills: frozenset[str] | None = None
    flows: frozenset[str] | None = None
    agents: frozenset[str] | None = None


@dataclass
class _Check:
    flow: Flow
    known: Known
    problems: list[Problem] = field(default_factory=list)

    def at(self, step: Step, *keys: str | int) -> str:
        doc = self.flow.doc
        return doc.where(["steps", step.name, *keys]) if doc else step.where

    def add(self, where: str, message: str, hint: str | None = None) -> None:
        self.problems.append(Problem(where, message, hint))


def check(flow: Flow, known: Known = Known()) -> None:
    """Raise FlowInvalid with every problem of `flow` (each with file:line:column)."""
    c = _Check(flow, known)
    if flow.start not in flow.steps:
        c.add(flow.doc.where(["start"]) if flow.doc else str(flow.path),
              f"start step {flow.start!r} does not exist", _close(flow.start, flow.steps))
    for step in flow.steps.values():
        _targets(c, step)
        _languages(c, step)
        _outside(c, step)
    if not c.problems:
        _reachable(c)
        _loops(c)
    if c.problems:
        raise FlowInvalid(c.problems)


def edges(step: Step) -> list[str]:
    return [t for t in [step.next, *step.transitions.values()] if t]


def _targets(c: _Check, step: Step) -> None:
    for label, target in [("next", step.next), *step.on.items(),
                          *step.verb.targets().items()]:
        if target and target not in c.flow.steps:
            keys: tuple[str, ...] = ("next",) if label == "next" else \
                ("on", label) if label in step.on else (step.verb.name,)
            c.add(c.at(step, *keys), f"step {step.name!r} goes to {target!r}, which is not "
                  "a step of this flow", _close(target, c.flow.steps))


def _languages(c: _Check, step: Step) -> None:
    declared = set(c.flow.languages)
    for arg, parts in step.verb.prompts():
        for part in parts:
            if not isinstance(part, Speech):
                continue
            langs = set(part.texts)
            if part.language is not None:
                if part.language not in declared:
                    c.add(c.at(step, step.verb.name, arg), f"{arg}: {part.language!r} is "
                          "not a language of this flow")
                continue
            if langs == {"*"}:
                if len(declared) > 1:
                    c.add(c.at(step, step.verb.name, arg), f"{arg}: one text for a flow in "
                          f"{', '.join(sorted(declared))}",
                          "write one text per language, e.g. {en: ..., zh-CN: ...}")
                continue
            for lang in sorted(declared - langs):
                c.add(c.at(step, step.verb.name, arg), f"{arg}: no {lang} text",
                      f"the flow declares languages {', '.join(c.flow.languages)}")
            for lang in sorted(langs - declared):
                c.add(c.at(step, step.verb.name, arg), f"{arg}: {lang!r} is not a language "
                      "of this flow", f"declare it in languages, or use one of "
                      f"{', '.join(c.flow.languages)}")
    verb = step.verb
    if isinstance(verb, Menu):
        for key, choice in verb.args.choices.items():
            chosen = choice.set.get("language") if isinstance(choice, Choice) else None
            if isinstance(chosen, str) and chosen not in declared:
                c.add(c.at(step, "menu", "choices", key), f"choice {key} sets language "
                      f"{chosen!r}, which the flow does not declare")
    if isinstance(verb, Listen):
        for name, intent in verb.args.intents.items():
            if isinstance(intent.phrases, dict):
                for lang in sorted(declared - set(intent.phrases)):
                    c.add(c.at(step, "listen", "intents", name), f"intent {name!r} has no "
                          f"{lang} phrases")


def _outside(c: _Check, step: Step) -> None:
    verb, k = step.verb, c.known
    queue = verb.args.queue if isinstance(verb, Enqueue | QueueStatus | Transfer) else None
    if queue and k.queues is not None and queue not in k.queues:
        c.add(c.at(step, verb.name, "queue"), f"no queue named {queue!r}",
              _close(queue, k.queues) or f"queues: {', '.join(sorted(k.queues))}")
    if isinstance(verb, Enqueue) and k.skills is not None:
        for i, s in enumerate(verb.args.steps or []):
            for skill in s.get("skills") or {}:
                if skill not in k.skills:
                    c.add(c.at(step, "enqueue", "steps", i, "skills"),
                          f"no agent or queue knows skill {skill!r}",
                          _close(skill, k.skills) or "add it to an agent or a queue first")
    if isinstance(verb, Transfer) and verb.args.agent and k.agents is not None \
            and verb.args.agent not in k.agents:
        c.add(c.at(step, "transfer", "agent"), f"no agent {verb.args.agent!r}",
              _close(verb.args.agent, k.agents))
    for name in verb.flows():
        if k.flows is not None and name not in k.flows and name != c.flow.name:
            c.add(c.at(step, verb.name), f"no flow named {name!r}", _close(name, k.flows))


def _reachable(c: _Check) -> None:
    seen, todo = {c.flow.start}, [c.flow.start]
    while todo:
        for t in edges(c.flow.steps[todo.pop()]):
            if t not in seen:
                seen.add(t)
                todo.append(t)
    for name, step in c.flow.steps.items():
        if name not in seen:
            c.add(step.where, f"step {name!r} cannot be reached from {c.flow.start!r}",
                  "remove it, or go to it from another step")


def _loops(c: _Check) -> None:
    """A set of steps that lead only to each other, none of them waiting for the caller:
    a caller who enters it can never leave (nor does the call ever end)."""
    steps = c.flow.steps
    for scc in _sccs({n: edges(s) for n, s in steps.items()}):
        looped = len(scc) > 1 or scc[0] in edges(steps[scc[0]])
        if not looped:
            continue
        inside = set(scc)
        exits = any(t not in inside for n in scc for t in edges(steps[n]))
        stops = any(steps[n].verb.waits_for_caller or steps[n].verb.ends_call or
                    steps[n].next is None for n in scc)
        if not exits and not stops:
            first = steps[sorted(scc, key=list(steps).index)[0]]
            c.add(first.where, "steps " + " -> ".join(sorted(scc, key=list(steps).index))
                  + " loop for ever: none waits for the caller and none leads out",
                  "add a menu/collect in the loop, or a branch that leaves it")


def _sccs(graph: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components, iteratively (flows can be long)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on.add(child)
                    work.append((child, iter(graph.get(child, []))))
                    break
                if child in on:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    scc = []
                    while True:
                        n = stack.pop()
                        on.discard(n)
                        scc.append(n)
                        if n == node:
                            break
                    out.append(scc)
    return out


def _close(name: str, names: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(name, list(names), 1)
    return f"did you mean {close[0]!r}?" if close else None
