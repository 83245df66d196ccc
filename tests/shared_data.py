"""Where the shared real-data folder lives, for tests that read it.

The data sits beside the repository (``../shared/data``), not inside it. Locally a
test that needs it is skipped when it is absent; on CI (``CI=true``) absence is a
failure, so a broken checkout cannot pass silently.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def shared_data_dir() -> Path:
    """The ``shared/data`` folder beside the repository; skip (or fail on CI) when it is absent."""
    path = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    if not path.is_dir():
        reason = f"shared real-data folder {path} is absent (it lives beside the repository)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


def shared_data(relative: str) -> Path:
    """Path of a file in the shared real-data folder (skips, or fails on CI, when absent)."""
    return shared_data_dir() / relative


def read_ngsim_table(path: Path):
    """The canonical raw table (pandas) of an NGSIM file, read by :func:`ppuu.data.ngsim.read_ngsim`."""
    from ppuu.data.ngsim import read_ngsim

    return read_ngsim(path)[0]
