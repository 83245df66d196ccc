"""``needs_sumo``: skip a test where the SUMO binaries are missing (pip install eclipse-sumo)."""

from __future__ import annotations

import pytest

from ppuu.data.sumo import SumoError
from ppuu.data.sumo.tools import find_binary

try:
    find_binary("sumo")
    find_binary("netconvert")
    HAVE_SUMO = True
except SumoError:
    HAVE_SUMO = False

needs_sumo = pytest.mark.skipif(not HAVE_SUMO, reason="SUMO not installed (pip install eclipse-sumo)")
