"""Fixtures of the broker tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.broker.test_jsonld import ContextServer


@pytest.fixture(scope="module")
def server() -> Iterator[ContextServer]:
    """The local @context server (real HTTP on 127.0.0.1), one per test module."""
    srv = ContextServer()
    srv.thread.start()
    try:
        yield srv
    finally:
        srv.httpd.shutdown()
        srv.httpd.server_close()
