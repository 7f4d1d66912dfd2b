"""Storage engines behind one contract (``storage.base.Storage``)."""

from __future__ import annotations

from nakhon.storage.base import Storage


def storage_for(url: str, *, write_batch_max: int = 512) -> Storage:
    """The engine a database URL names: ``sqlite:///file`` or ``postgresql://…``."""
    if url.startswith("sqlite:///"):
        from nakhon.storage.sqlite import SqliteStorage

        return SqliteStorage(url.removeprefix("sqlite:///"), write_batch_max=write_batch_max)
    if url.startswith(("postgresql://", "postgres://")):
        from nakhon.storage.postgres import PostgresStorage

        return PostgresStorage(url, write_batch_max=write_batch_max)
    raise ValueError(f"Unsupported database URL {url!r}: use sqlite:/// or postgresql://")
