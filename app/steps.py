"""Which steps of a resumable recipe (``ppuu demo``, ``scripts/paper_table.py``) have finished.

One JSON file maps each finished step to its wall time (s) and its ``ppuu`` argv. It is rewritten
through a temporary file and a rename, so a kill never leaves half of it, and a step is only
recorded once its command has succeeded.
"""

from __future__ import annotations

import json
from pathlib import Path


class FinishedSteps:
    """The finished steps recorded in ``path`` (created with its folder on the first :meth:`mark`)."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def load(self) -> dict:
        """step -> {"seconds": wall time, "command": argv or None}, in the order they finished."""
        return json.loads(self.path.read_text()) if self.path.is_file() else {}

    def mark(self, step: str, seconds: float, command: list[str] | None) -> None:
        """Record ``step`` as finished after ``seconds`` with ``command``."""
        done = self.load()
        done[step] = {"seconds": round(seconds, 1), "command": command}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(done, indent=2))
        tmp.replace(self.path)
