"""The demo: synthetic instruments that write realistic NeXus runs for autoreduce to reduce."""
