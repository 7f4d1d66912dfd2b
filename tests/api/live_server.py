"""Helpers for the fuzzing tests: a real Nakhon server (uvicorn) on a free local port in a
background thread, and the response checks and known server errors both fuzzers share.

Why a real server rather than an in-process ASGI client: schemathesis drives its cases from
synchronous code, and the storage engines (asyncpg's pool, the SQLite group-commit writer) are
bound to the event loop that opened them. Running uvicorn in a thread of its own gives the app
one private loop for its whole life — the app opens storage in its lifespan there, and any
number of blocking HTTP clients can talk to it over TCP, exactly as a real client would.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from nakhon.app import create_app
from nakhon.config import load_settings

START_TIMEOUT_S = 30.0


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def live_server(database_url: str, data_dir: Path, *, auth: str = "off") -> Iterator[str]:
    """Serve Nakhon on ``database_url`` and yield its base URL (``http://127.0.0.1:PORT``).

    Settings match the ``api`` fixture in tests/conftest.py, so both doors see the same app.
    """
    settings = load_settings(
        env={}, database_url=database_url, data_dir=data_dir, auth=auth, max_body_bytes=262144
    )
    app = create_app(settings)
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", access_log=False
    )
    server = uvicorn.Server(config)
    # uvicorn installs signal handlers only in the main thread; in a worker thread it skips them.
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the Nakhon test server stopped while starting (see its log)")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the Nakhon test server did not start in {START_TIMEOUT_S} s")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=START_TIMEOUT_S)


# ---------------------------------------------------------------------------------------------
# What the fuzzing tests (test_fuzz.py, test_schemathesis.py) share: a request as sent, the
# response checks, and the server errors already found. Each known error keeps its exact
# reproduction, so it can be xfailed on its own while the properties keep running around it.

BASE = "/ngsi-ld/v1"
JSON_CT = "application/json"
ERRORS_NS = "https://uri.etsi.org/ngsi-ld/errors/"


@dataclass(frozen=True)
class Sent:
    """One request exactly as sent, so a failure message is a ready reproduction."""

    method: str
    url: str  # path and query string, percent-encoded as on the wire
    content: bytes | None
    headers: dict[str, str]

    def describe(self) -> str:
        body = (self.content or b"")[:2000].decode("utf-8", "backslashreplace")
        return f"{self.method} {self.url}\n  headers: {self.headers}\n  body: {body}"


@dataclass(frozen=True)
class KnownBug:
    """A server error found by fuzzing: how to recognise it, and one exact reproduction."""

    name: str
    reason: str
    engines: tuple[str, ...]
    matches: Callable[[Sent], bool]
    method: str
    path: str
    body: Any = None

    def request(self, tenant: str) -> Sent:
        content = None if self.body is None else json.dumps(self.body).encode()
        return Sent(self.method, BASE + self.path, content,
                    {"NGSILD-Tenant": tenant, "Content-Type": JSON_CT})


# Server errors found and not yet fixed (none now: U+0000 is refused at the edge).
KNOWN_SERVER_ERRORS: list[KnownBug] = []


def known_bug_for(engine: str, sent: Sent) -> KnownBug | None:
    return next((b for b in KNOWN_SERVER_ERRORS if engine in b.engines and b.matches(sent)), None)


def check_response(engine: str, sent: Sent, response: httpx.Response) -> KnownBug | None:
    """No 5xx, and ProblemDetails for every 4xx. Returns the known bug a 5xx is excused by."""
    status = response.status_code
    if status >= 500:
        problem = _problem(response)
        if status == 503 and problem.get("type") == ERRORS_NS + "LdContextNotAvailable":
            return None  # the spec's answer when the client's own @context cannot be fetched
        bug = known_bug_for(engine, sent)
        if bug is None:
            raise AssertionError(f"{status} on {engine}: {response.text[:500]}\n{sent.describe()}")
        return bug
    if status >= 400:
        problem = _problem(response)
        assert str(problem.get("type", "")).startswith(ERRORS_NS), (status, response.text)
        assert isinstance(problem.get("title"), str) and problem["title"], response.text
        assert isinstance(problem.get("detail"), str) and problem["detail"], response.text
    return None


def wire_headers(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    # Latin-1 bytes, as HTTP/1.1 carries them: httpx refuses non-ASCII text.
    return [(k.encode("ascii"), v.encode("latin-1", "replace")) for k, v in headers.items()]


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise AssertionError(
            f"{response.status_code} without a JSON body: {response.text[:300]!r}"
        ) from None
    assert isinstance(body, dict), body
    return body
