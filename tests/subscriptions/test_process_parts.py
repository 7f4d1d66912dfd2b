"""The parts of delivery in a process of its own, alone: batched cursor saves, the busy mark
a writer puts on its outbox rows, and the SQLite file lock."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from nakhon.subscriptions.process import AckBuffer, FileLock, WriterBusy
from nakhon.subscriptions.store import Stats


class _Store:
    """Records what reaches the database."""

    def __init__(self) -> None:
        self.saved: list[list[tuple[int, int, int]]] = []
        self.collected: list[tuple[int, int]] = []

    async def ack_many(self, acks: Sequence[tuple[int, int, Stats]]) -> None:
        self.saved.append([(pk, cursor, stats.times_sent) for pk, cursor, stats in acks])

    async def collect(self, below: int) -> None:
        self.collected.append((below, len(self.saved)))

    async def close(self) -> None:
        return None


async def test_acks_are_saved_together_newest_cursor_first_then_collect() -> None:
    store = _Store()
    acks = AckBuffer(store, interval=0.05)  # type: ignore[arg-type]
    acks.start()
    stats = Stats(times_sent=3)
    for cursor in (5, 9, 7):  # an older cursor never moves it back
        await acks.ack(1, cursor, stats)
    await acks.ack(2, 4, Stats(times_sent=1))
    assert store.saved == []  # nothing written yet: batched
    await asyncio.sleep(0.15)
    assert store.saved == [[(1, 9, 3), (2, 4, 1)]]  # one write for both, after the interval
    await acks.ack(1, 12, stats)
    await acks.collect(10)
    # The cursor is saved before the rows it passed are deleted (else a crash could lose them).
    assert store.saved[-1] == [(1, 12, 3)] and store.collected == [(10, 2)]
    await acks.ack(2, 6, Stats(times_sent=2))
    await acks.close()
    assert store.saved[-1] == [(2, 6, 2)]  # flushed on stop


async def test_a_failed_save_is_kept_for_the_next_one() -> None:
    store = _Store()
    calls = 0

    async def failing(acks: Sequence[tuple[int, int, Stats]]) -> None:
        nonlocal calls
        calls += 1
        raise OSError("disk busy")

    real = store.ack_many
    store.ack_many = failing  # type: ignore[method-assign]
    acks = AckBuffer(store, interval=10)  # type: ignore[arg-type]
    await acks.ack(1, 5, Stats())
    with pytest.raises(OSError):
        await acks.flush()
    store.ack_many = real  # type: ignore[method-assign]
    await acks.flush()
    assert calls == 1 and store.saved == [[(1, 5, 0)]]


def test_writer_busy_follows_the_rows_mark() -> None:
    busy = WriterBusy(hold=0.2)
    assert not busy()
    busy.saw(b'{"changes"')
    assert not busy()
    busy.saw(b'{"busy":1,')
    assert busy()


def test_the_hook_marks_rows_written_while_busy() -> None:
    from nakhon.subscriptions.matcher import OutboxHook, Registry

    hook = OutboxHook(Registry(), lambda pks: None)
    assert not hook.busy()
    hook.rows([], "2026-01-01T00:00:00Z")
    changes: list[Any] = [("t", f"urn:x:{i}", None) for i in range(16)]
    hook.rows(changes, "2026-01-01T00:00:00Z")  # a group of 16: writes are queueing
    assert hook.busy()


async def test_one_file_lock_holder_at_a_time(tmp_path: Path) -> None:
    db = str(tmp_path / "n.db")
    first, second = FileLock(db), FileLock(db)
    assert await first.try_acquire()
    assert not await second.try_acquire()
    await first.release()
    assert await second.try_acquire()
    await second.release()
