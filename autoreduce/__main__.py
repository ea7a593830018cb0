"""``python -m autoreduce``: the same as the ``autoreduce`` command."""

from autoreduce.cli import main

main()
