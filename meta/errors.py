"""Typed errors and the problem report every check returns.

The library never prints or exits: it raises these, and the CLI turns them into messages and
exit codes. A ``Problem`` names the file, row and column and says how to fix it, so one report can
carry every problem of a sheet at once (as frictionless's cell errors do).
"""

from __future__ import annotations

from dataclasses import dataclass


class MetaError(Exception):
    """Base of every error the toolkit raises on purpose."""


class OptionError(MetaError, ValueError):
    """An option value outside its vocabulary."""


@dataclass(frozen=True)
class Problem:
    """One problem found in a sheet; ``row`` is the 1-based data row (header excluded), 0 = file."""

    kind: str
    file: str
    row: int
    column: str
    message: str
    fix: str

    def __str__(self) -> str:
        where = self.file if self.row == 0 else f"{self.file}, row {self.row}"
        if self.column:
            where += f", column {self.column}"
        return f"{where}: {self.message} [{self.kind}] Fix: {self.fix}"


class SheetError(MetaError):
    """A sheet (or a set of sheets) with problems; carries every one of them."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__(f"{len(self.problems)} problem(s) found")


class SpecError(MetaError):
    """An analysis spec that cannot be run (unknown key, path outside the project, ...)."""
