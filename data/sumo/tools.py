"""Finding and running the SUMO binaries, with errors a user can act on.

SUMO comes from PyPI (``pip install eclipse-sumo``), which puts ``sumo`` and
``netconvert`` on the PATH and ships them inside the ``sumo`` Python package;
we look in both places so a virtual environment without activated scripts
still works. Every call goes through :func:`run_tool`, which turns a missing
binary or a non-zero exit into a :class:`SumoError` carrying the tail of
SUMO's own error output.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Callable

INSTALL_HINT = "install SUMO with `pip install eclipse-sumo sumolib` (or put SUMO's bin folder on the PATH)"


class SumoError(RuntimeError):
    """SUMO is missing, or one of its tools failed (the message holds its stderr tail)."""


def find_binary(name: str) -> str:
    """Path of a SUMO executable (``"sumo"``, ``"netconvert"``); raises :class:`SumoError` if absent.

    Looks in ``$SUMO_HOME/bin``, then the ``sumo`` Python package (eclipse-sumo), then the PATH.
    """
    candidates = []
    home = os.environ.get("SUMO_HOME")
    if home:
        candidates.append(Path(home) / "bin" / name)
    try:
        import sumo  # eclipse-sumo wheel

        candidates.append(Path(sumo.SUMO_HOME) / "bin" / name)
    except (ImportError, AttributeError):
        pass
    for cand in candidates:
        if cand.is_file() and os.access(cand, os.X_OK):
            return str(cand)
    found = shutil.which(name)
    if found:
        return found
    raise SumoError(f"SUMO executable {name!r} not found; {INSTALL_HINT}")


def sumo_version() -> str:
    """Version string of the ``sumo`` binary, e.g. ``"1.28.0"``."""
    out = subprocess.run([find_binary("sumo"), "--version"], capture_output=True, text=True, check=False).stdout
    match = re.search(r"\bv?(\d+\.\d+(?:\.\d+)?\S*)", out)
    return match.group(1) if match else "unknown"


def sumo_has_parquet() -> bool:
    """Whether the ``sumo`` binary can write Parquet output (its build features list "Parquet")."""
    out = subprocess.run([find_binary("sumo"), "--version"], capture_output=True, text=True, check=False).stdout
    return "parquet" in out.lower()


def _tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def run_tool(name: str, args: list[str], cwd: Path, on_stdout: Callable[[str], None] | None = None) -> str:
    """Run SUMO tool ``name`` with ``args`` in ``cwd``; return its stderr (warnings).

    Args:
        name: executable name ("sumo", "netconvert").
        args: command-line arguments.
        cwd: working directory (relative file names in ``args`` are resolved there).
        on_stdout: if given, called with each chunk of standard output as it arrives
            (used to follow SUMO's step log for a progress bar); otherwise stdout is discarded.

    Raises:
        SumoError: the binary is missing or exits non-zero (message ends with its stderr tail).
    """
    cmd = [find_binary(name), *args]
    stderr_path = Path(cwd) / f".{name}.stderr"
    with open(stderr_path, "w+b") as err:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE if on_stdout else subprocess.DEVNULL,
                                stderr=err)
        try:
            if on_stdout is not None:
                assert proc.stdout is not None
                while True:
                    chunk = proc.stdout.read1(4096)  # type: ignore[attr-defined]
                    if not chunk:
                        break
                    on_stdout(chunk.decode(errors="replace"))
            rc = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    stderr_path.unlink(missing_ok=True)
    if rc != 0:
        raise SumoError(f"{name} exited with status {rc} (command: {' '.join(cmd)}); "
                        f"its last error output:\n{_tail(stderr)}")
    return stderr
