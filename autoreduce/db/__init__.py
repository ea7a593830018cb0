"""Database engine, sessions and migrations: one way to reach the database for every service."""

from autoreduce.db.engine import Database, is_unreachable, safe_url, upgrade

__all__ = ["Database", "is_unreachable", "safe_url", "upgrade"]
