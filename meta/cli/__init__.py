"""The command line: a thin click layer over the library (``meta --help``)."""

from meta.cli.main import main

__all__ = ["main"]
