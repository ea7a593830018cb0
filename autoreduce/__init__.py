"""autoreduce: reduce scientific data the moment an instrument writes it."""

__version__ = "0.1.0"
