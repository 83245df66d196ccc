"""The one exception type for bad tracked-vehicle input."""

from __future__ import annotations

from pathlib import Path


class DataFormatError(ValueError):
    """Bad input data: says which file, which line (1-based) or field, and what was expected.

    Attributes:
        path: the offending file, or None for in-memory tables.
        line: 1-based line number in the file (or row number in a table), or None.
        field: column name, or None.
    """

    def __init__(self, message: str, path: str | Path | None = None,
                 line: int | None = None, field: str | None = None):
        self.path = None if path is None else str(path)
        self.line = line
        self.field = field
        where = []
        if self.path is not None:
            where.append(self.path)
        if line is not None:
            where.append(f"line {line}")
        if field is not None:
            where.append(f"field {field!r}")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)
