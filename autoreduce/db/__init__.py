"""Database engine, sessions and migrations: one way to reach the database for every service."""

from autoreduce.db.engine import Database, upgrade

__all__ = ["Database", "upgrade"]
