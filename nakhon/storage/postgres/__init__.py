"""PostgreSQL + PostGIS storage engine (production). See :mod:`.engine`."""

from .engine import PostgresStorage

__all__ = ["PostgresStorage"]
