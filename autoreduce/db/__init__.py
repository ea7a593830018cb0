"""Database engine, sessions and migrations: one way to reach the database for every service."""

from autoreduce.db.engine import Database, ReadOnlySessionError, is_unreachable, safe_url, upgrade

__all__ = ["Database", "ReadOnlySessionError", "is_unreachable", "safe_url", "upgrade"]
