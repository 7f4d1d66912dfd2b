"""SQLite WAL checkpoints run on their own thread, not inside the writer's COMMIT."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from nakhon.broker import ops
from nakhon.broker.model import Entity
from nakhon.storage.base import WriteOp
from nakhon.storage.sqlite.checkpoint import FALLBACK_PAGES, database_file
from nakhon.storage.sqlite.engine import SqliteStorage

V = "https://uri.etsi.org/ngsi-ld/default-context/"


async def test_checkpoints_leave_the_writer(tmp_path: Path) -> None:
    path = str(tmp_path / "c.db")
    storage = SqliteStorage(path)
    await storage.open()
    try:
        writer = storage.writer
        assert writer.checkpointer is not None
        assert database_file(writer._conn) == path
        assert writer._conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == FALLBACK_PAGES
        for batch in range(5):
            await storage.write([
                WriteOp("t", f"urn:e:{i}", ops.upsert_entity(Entity(
                    f"urn:e:{i}", [V + "T"], {V + "n": [{"type": "Property",
                                                         "value": batch * 1000 + i}]}),
                    mode="update"))
                for i in range(500)])
        runs = writer.checkpointer.runs
        for _ in range(40):
            await asyncio.sleep(0.1)
            if writer.checkpointer.runs > runs:
                break
        assert writer.checkpointer.runs > runs
        # Everything in the WAL has been copied back (nothing left for a checkpoint to do).
        check = sqlite3.connect(path)
        busy, frames, done = check.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        check.close()
        assert busy == 0 and done == frames
    finally:
        await storage.close()
    assert not writer.checkpointer._thread.is_alive()
    # The data is all there after close (and the WAL is folded into the file).
    check = sqlite3.connect(path)
    assert check.execute("SELECT count(*) FROM entities").fetchone()[0] == 500
    check.close()


async def test_memory_database_has_no_checkpointer() -> None:
    storage = SqliteStorage(":memory:")
    await storage.open()
    try:
        assert storage.writer.checkpointer is None
    finally:
        await storage.close()
