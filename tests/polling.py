"""Tests wait by polling with a deadline, never by sleeping: the core's ``wait_for``."""

from autoreduce.polling import WaitTimeout, wait_for

__all__ = ["WaitTimeout", "wait_for"]
