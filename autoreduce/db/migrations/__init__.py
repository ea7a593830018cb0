"""Alembic migrations of the autoreduce schema (run by ``autoreduce.db.upgrade``)."""
