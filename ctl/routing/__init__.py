"""Routing (ARCHITECTURE.md). The engine's core (`CORE` below) may be compiled by mypyc
(setup.py, at `pip install -e .`): the compiled modules are used when all of them are
there and none is older than its source; otherwise, or with CTL_ROUTING_PURE=1, the
sources are. A compiled module left behind by an edit, a merge or a checkout would
otherwise run the old engine in place of the new source without a word."""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Sequence
from importlib.abc import MetaPathFinder
from importlib.machinery import EXTENSION_SUFFIXES, ModuleSpec
from importlib.util import spec_from_file_location
from pathlib import Path
from types import ModuleType

CORE = ("model", "queues", "policies", "core", "engine")
_HERE = Path(__file__).parent


def _built(name: str) -> Path | None:
    return next((p for s in EXTENSION_SUFFIXES if (p := _HERE / f"{name}{s}").exists()), None)


class _Sources(MetaPathFinder):
    """Imports the core's modules from their sources, past the compiled ones."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        package, _, name = fullname.rpartition(".")
        if package != __name__ or name not in CORE:
            return None
        return spec_from_file_location(fullname, _HERE / f"{name}.py")


def _choose() -> bool:
    built = {name: _built(name) for name in CORE}
    if not any(built.values()):
        return False
    stale = [name for name, p in built.items()
             if p is None or p.stat().st_mtime < (_HERE / f"{name}.py").stat().st_mtime]
    if stale or os.environ.get("CTL_ROUTING_PURE"):
        if stale:
            warnings.warn(f"ctl/routing: compiled {', '.join(stale)} missing or older than "
                          "the source; running the sources (rebuild: pip install -e .)",
                          stacklevel=2)
        sys.meta_path.insert(0, _Sources())
        return False
    return True


COMPILED = _choose()
"""Whether the engine's core runs compiled (mypyc) in this process."""


def _native(name: str, twin: str) -> bool:
    built = _built(name)
    if built is None or os.environ.get("CTL_ROUTING_PURE"):
        return False
    source = _HERE / f"{name}.c"
    if source.exists() and built.stat().st_mtime < source.stat().st_mtime:
        warnings.warn(f"ctl/routing: {name} is older than {name}.c; running its Python "
                      f"twin, {twin} (rebuild: pip install -e .)", stacklevel=2)
        return False
    return True


NATIVE_HEAP = _native("_rankheap", "rankheap.py")
"""Whether the buckets' heap is the C one (_rankheap.c, built by setup.py with the core,
but on its own: either may be there without the other) or rankheap.py."""
NATIVE_LIST = _native("_ranklist", "ranklist.py")
"""Whether the agent index's lists are the C ones (_ranklist.c, built like _rankheap.c)
or ranklist.py's."""
