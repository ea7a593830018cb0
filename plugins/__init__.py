"""The built-in reduction plugins, registered through the ``autoreduce.plugins`` entry points."""
