"""The ``approx-audit`` command line: thin click commands that parse, call and print."""
