"""``nakhon notify``: the delivering process, and the child process ``nakhon serve`` starts.

:func:`run_notifier` opens the storage and a :class:`SubscriptionService` in the ``deliverer``
role and runs until SIGTERM or SIGINT. :class:`NotifierChild` is how ``nakhon serve`` in
``NAKHON_NOTIFY_MODE=process`` runs it: a child process on the same database, restarted (after
a second) if it dies, stopped with the server. See docs/subscriptions.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable

from nakhon.config import Settings
from nakhon.core.logs import get_logger

log = get_logger("nakhon.subscriptions.notifier")

PARENT_ENV = "NAKHON_NOTIFY_PARENT"  # set by NotifierChild: the serving process's pid


async def _orphaned(parent: int, stop: asyncio.Event) -> None:
    """A child of ``nakhon serve`` stops when its server is gone (even killed by SIGKILL): a
    restarted server starts a child of its own, which must not wait behind an orphan."""
    while True:
        await asyncio.sleep(1.0)
        if os.getppid() != parent:
            break
    stop.set()
    with contextlib.suppress(OSError):  # its output may have gone with it (a broken pipe)
        log.warning("the server that started this process is gone; stopping")


async def run_notifier(settings: Settings, echo: Callable[[str], None] | None = None,
                       stop: asyncio.Event | None = None) -> None:
    """Deliver notifications of the configured database until ``stop`` is set, or SIGTERM /
    SIGINT. ``echo`` gets one line when this process becomes the one delivering."""
    from nakhon.broker.jsonld import ContextResolver, KvContextStore
    from nakhon.core.auth import Access
    from nakhon.storage import storage_for
    from nakhon.subscriptions.service import SubscriptionService

    if settings.notify_nice > 0:  # writes first, by the kernel's scheduler
        with contextlib.suppress(OSError):
            os.nice(min(19, settings.notify_nice))
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    storage = storage_for(settings.resolved_database_url,
                          write_batch_max=settings.write_batch_max)
    await storage.open()
    resolver = ContextResolver(timeout=settings.context_fetch_timeout,
                               max_bytes=settings.context_max_bytes,
                               ttl=settings.context_cache_ttl, store=KvContextStore(storage),
                               allow_private=settings.context_fetch_private)
    access = Access(storage, enabled=settings.auth_enabled,
                    anonymous_read=settings.anonymous_read)
    svc = SubscriptionService(storage, access, resolver, max_limit=settings.max_limit,
                              max_delay=settings.notification_max_delay,
                              max_entities=settings.notification_max_entities,
                              role="deliverer", poll_interval=settings.notify_poll_interval)
    parent = int(os.environ.get(PARENT_ENV, "0") or 0)
    watch = loop.create_task(_orphaned(parent, stop)) if parent else None
    try:
        await svc.open()
        assert svc.dispatcher is not None
        leading = loop.create_task(svc.dispatcher.leader.wait())
        stopping = loop.create_task(stop.wait())
        await asyncio.wait({leading, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if leading.done() and echo is not None:
            echo("nakhon notify: delivering notifications")
        await stopping
        leading.cancel()
    finally:
        if watch is not None:
            watch.cancel()
        await svc.close()
        await resolver.aclose()
        await storage.close()


class NotifierChild:
    """``nakhon notify`` as a child of the serving process (``NAKHON_NOTIFY_MODE=process``)."""

    def __init__(self, settings: Settings, restart_after: float = 1.0) -> None:
        self.settings = settings
        self.restart_after = restart_after
        self.process: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def command(self) -> list[str]:
        return [sys.executable, "-m", "nakhon", "notify",
                "--database-url", self.settings.resolved_database_url,
                "--data-dir", str(self.settings.data_dir)]

    async def _spawn(self) -> asyncio.subprocess.Process:
        # A session of its own: a terminal's Ctrl-C reaches the server only, which then stops
        # the child (instead of seeing it die and starting it again).
        return await asyncio.create_subprocess_exec(
            *self.command(), env={**os.environ, PARENT_ENV: str(os.getpid())},
            start_new_session=True)

    async def start(self) -> None:
        self.process = await self._spawn()
        self._task = asyncio.get_running_loop().create_task(self._supervise(),
                                                            name="nakhon-notify-child")

    async def _supervise(self) -> None:
        while True:
            assert self.process is not None
            code = await self.process.wait()
            if self.stopped():
                return
            log.error("the notification process stopped; starting it again", exit_code=code)
            await asyncio.sleep(self.restart_after)
            if not self.stopped():
                self.process = await self._spawn()

    def stopped(self) -> bool:
        return self._stopping

    async def stop(self, grace: float = 10.0) -> None:
        self._stopping = True
        proc = self.process
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
