"""WAL checkpoints off the writer thread.

In WAL mode SQLite appends every commit to the ``-wal`` file, and by default the committing
connection copies the WAL back into the database (a *checkpoint*, with its fsyncs) whenever the
WAL passes 1,000 pages — inside COMMIT, on the one writer thread. Under ingest load (thousands of
history rows a second, spread over the history index) that was nearly every group commit, and
it grew with the database: in process, batches of 1,600 measurements, the writer thread's CPU
went from 65 to 157 µs per measurement over four rounds and the rate from 9,800 to 4,000/s;
with the checkpoint moved off the writer it stayed at 8,000–8,900/s.

So the writer's automatic checkpoint is raised to a fallback (:data:`FALLBACK_PAGES`, used only
if this thread were stuck) and a :class:`Checkpointer` thread with its own connection runs a
PASSIVE checkpoint every :data:`INTERVAL` seconds: it copies what no reader still needs, never
blocks the writer or readers (PASSIVE takes no write lock and does not wait), and runs without
the GIL (the sqlite3 module releases it), so it uses the other core. A page written by several
commits between two checkpoints is copied once. Durability is unchanged: a commit is in the WAL
whether or not it has been checkpointed, and the WAL is replayed on open after a crash.
"""

from __future__ import annotations

import sqlite3
import threading

from nakhon.core.logs import get_logger

log = get_logger("nakhon.storage.sqlite")

INTERVAL = 0.5
FALLBACK_PAGES = 100_000  # 400 MB of 4 KiB pages: the writer checkpoints itself only past this


def database_file(conn: sqlite3.Connection) -> str:
    """The file behind the main database of ``conn`` ('' for an in-memory database)."""
    for _, name, path in conn.execute("PRAGMA database_list"):
        if name == "main":
            return str(path or "")
    return ""


class Checkpointer:
    """A thread running ``PRAGMA wal_checkpoint(PASSIVE)`` on ``path`` every ``interval``."""

    def __init__(self, path: str, interval: float = INTERVAL) -> None:
        self.path = path
        self.interval = interval
        self.runs = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="nakhon-sqlite-checkpoint",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:  # the writer's fallback checkpoints still bound the WAL
            log.warning("sqlite checkpointer cannot open the database", error=str(exc))
            return
        try:
            conn.execute("PRAGMA synchronous=NORMAL")
            while not self._stop.wait(self.interval):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.runs += 1
                except sqlite3.Error as exc:
                    log.warning("sqlite checkpoint failed", error=str(exc))
        finally:
            conn.close()
