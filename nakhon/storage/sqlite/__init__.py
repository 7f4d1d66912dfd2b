"""The embedded SQLite storage engine."""

from nakhon.storage.sqlite.engine import SqliteStorage

__all__ = ["SqliteStorage"]
