"""The API channel's endpoints fuzzed by schemathesis from the published OpenAPI
document, against a running controller: never a 5xx, and every answer (status, content
type, body) is one the document describes. Bounded: a few hundred requests.

Every check but one: schema-valid input may still be refused with a documented 4xx, since
whether an identity is usable depends on its kind (a phone number, an email address),
which the schema does not spell out; so positive_data_acceptance is left out.

The controller runs in its own thread and loop: schemathesis calls it synchronously."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.integration.channels_app import App, add_agent, platform_app

# Per operation: the platforms' four get most (~170 requests in all, ~30 s here).
EXAMPLES = {"/api/v1/channel": 35, "/api/v1/api-keys": 10}


class Served:
    """ctl serving in a thread of its own until stopped."""

    def __init__(self, data_dir: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self._ready: Future[App] = Future()
        self._stop = asyncio.Event()
        self._thread = threading.Thread(target=self.loop.run_until_complete,
                                        args=(self._serve(data_dir),), daemon=True)
        self._thread.start()
        self.app = self._ready.result(timeout=60)

    async def _serve(self, data_dir: Path) -> None:
        try:
            async with platform_app(data_dir) as app:
                self._ready.set_result(app)
                await self._stop.wait()
        except BaseException as e:
            if not self._ready.done():
                self._ready.set_exception(e)
            raise

    def run(self, work: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout=30)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    s = Served(tmp_path_factory.mktemp("api-fuzz"))
    try:
        yield s
    finally:
        s.stop()


def test_api_channel_fuzzed_from_its_document(served: Served) -> None:
    base = served.app.base
    password = served.run(add_agent(served.app.services, "fuzzadmin", "admin"))
    http = requests.Session()
    token = http.post(f"{base}/api/v1/login", json={
        "username": "fuzzadmin", "password": password}).json()["token"]
    made = http.post(f"{base}/api/v1/api-keys", json={"name": "fuzz"},
                     headers={"Authorization": f"Bearer {token}"}).json()
    headers = {"Authorization": f"Bearer {token}", "X-API-Key": made["key"]}
    # A real contact, so that fuzzed calls on it reach past "not found" half the time.
    contact = http.post(f"{base}/api/v1/channel/contacts", headers=headers, json={
        "customer": {"kind": "account", "value": "fuzz"},
        "message": {"id": "fuzz-1", "text": "hello"}}).json()["contact"]
    schema = schemathesis.openapi.from_url(f"{base}/api/v1/openapi.json").include(
        path_regex=r"^/api/v1/(channel/|api-keys)")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 7
    for operation in operations:
        @settings(max_examples=next(n for p, n in EXAMPLES.items()
                                    if operation.path.startswith(p)), deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(), real=st.booleans())
        def fuzz(case: schemathesis.Case, real: bool) -> None:
            if real and "contact" in (case.path_parameters or {}):
                case.path_parameters = {**(case.path_parameters or {}), "contact": contact}
            case.call_and_validate(base_url=base, session=http, headers=headers,
                                   excluded_checks=[positive_data_acceptance])

        fuzz()
