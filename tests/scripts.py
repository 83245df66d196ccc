"""Load a file of ``scripts/`` as a module, for the tests that call a script's ``main``."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def load_script(name: str) -> ModuleType:
    """``scripts/NAME.py`` as a fresh module named ``ppuu_script_NAME`` (registered in ``sys.modules``
    first: a script's dataclasses look their module up there)."""
    spec = importlib.util.spec_from_file_location(f"ppuu_script_{name}", SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
