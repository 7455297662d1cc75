"""A fresh, migrated database per backend for the ticket tests (no Asterisk needed): the
storage tests' own (`store` in conftest.py), under the name these tests use."""

from __future__ import annotations

import pytest

from ctl.store.db import Database


@pytest.fixture(scope="module")
def ticket_db(store: Database) -> Database:
    return store
