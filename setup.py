"""Compiles the routing engine's pure core with mypyc (pyproject.toml has the rest).

A mypyc-compiled engine makes routing decisions ~1.5-2x faster than CPython runs the
same source (bench/README.md, `bench.routing`). The extensions are optional: without
mypy or a C compiler (the slim Docker image) the install goes on and the sources run,
and ctl/routing/__init__.py uses them too when a compiled module is older than its
source.
"""

import sys

from setuptools import Extension, setup

# Imported by one another's compiled code: all five are compiled, or none is used.
ROUTING_CORE = [f"ctl/routing/{name}.py"
                for name in ("model", "queues", "policies", "core", "engine")]

extensions = []
try:
    from mypyc.build import mypycify

    extensions = mypycify(ROUTING_CORE, opt_level="3", group_name="ctl_routing")
except (Exception, SystemExit) as e:  # no mypy, or it refused the code (type errors)
    print(f"setup.py: the routing core stays uncompiled: {e!r}", file=sys.stderr)
# The buckets' heap in C (ctl/routing/_rankheap.c; rankheap.py runs without it).
extensions.append(Extension("ctl.routing._rankheap", ["ctl/routing/_rankheap.c"]))
# The agent index's sorted lists in C (ctl/routing/_ranklist.c; ranklist.py without it).
extensions.append(Extension("ctl.routing._ranklist", ["ctl/routing/_ranklist.c"]))
for extension in extensions:
    extension.optional = True  # a failed compile warns and leaves the sources

setup(ext_modules=extensions)
