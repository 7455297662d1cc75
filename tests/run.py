"""The whole suite: preflight (services must be there), lint, types, tests.

PostgreSQL, Redis and Asterisk are required: their absence fails the run, it never skips.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
PG = os.environ.get("CTL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("CTL_TEST_REDIS", "redis://127.0.0.1:6379")


async def _preflight() -> list[str]:
    import asyncpg
    import redis.asyncio as redis

    problems = []
    try:
        conn = await asyncpg.connect(PG, timeout=5)
        await conn.close()
    except Exception as e:
        problems.append(f"PostgreSQL at {PG} is not reachable ({e}); install and start it "
                        "(apt-get install postgresql) or set CTL_TEST_PG")
    client = redis.from_url(REDIS)
    try:
        await client.ping()
    except Exception as e:
        problems.append(f"Redis at {REDIS} is not reachable ({e}); install and start it "
                        "(apt-get install redis-server) or set CTL_TEST_REDIS")
    finally:
        await client.aclose()
    return problems


def _run(*cmd: str) -> int:
    print("+", " ".join(cmd), flush=True)
    return subprocess.call(cmd, cwd=PROJECT)


def main(argv: list[str]) -> int:
    problems = asyncio.run(_preflight())
    if problems:
        print("tests cannot run:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    py = sys.executable
    failed = 0
    if not argv:
        failed |= _run(py, "-m", "ruff", "check", "ctl", "adapters", "tests", "bench")
        failed |= _run(py, "-m", "mypy", "--strict", "ctl", "adapters")
    # Most tests wait on Asterisk, timers and browsers, not the CPU: two workers (xdist)
    # halve the wall time on 2 cores. CTL_TEST_WORKERS=0 runs in one process.
    workers = os.environ.get("CTL_TEST_WORKERS", "2" if not argv else "0")
    parallel = ["-n", workers, "--dist", "loadgroup"] if workers != "0" else []
    rc = _run(py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--durations=30",
              *parallel, *argv)
    return 1 if (failed or rc) else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
