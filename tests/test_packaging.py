"""The package installs as one namespace, ``ppuu``, and nothing of the user's shadows it."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SUBPACKAGE_FOLDERS = ("app", "data", "simulator", "world_model", "planner")

# What a fresh interpreter must be able to do with the installed package.
SMOKE = (
    "import sys, gymnasium, ppuu\n"
    "gymnasium.register_envs(ppuu)\n"
    "from ppuu.simulator.sim import SimConfig\n"
    "from ppuu.data.scene import Scene\n"
    "import ppuu.world_model.models, ppuu.app.cli, ppuu.data.sumo\n"
    "assert gymnasium.spec('ppuu/Highway-v0').entry_point == 'ppuu.app.gym_env:HighwayEnv'\n"
    "print(ppuu.__file__)\n"
)


def _declared_packages() -> set[str]:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    return {line.strip() for line in cfg["options"]["packages"].splitlines() if line.strip()}


def test_setup_cfg_lists_every_package_folder():
    found = {"ppuu"}
    for top in SUBPACKAGE_FOLDERS:
        for init in (ROOT / top).rglob("__init__.py"):
            found.add("ppuu." + ".".join(init.parent.relative_to(ROOT).parts))
    assert _declared_packages() == found


def test_users_app_and_data_beside_their_script_break_nothing(tmp_path):
    """A user's ``app.py``, ``data/`` and ``simulator.py`` in the working folder are theirs, not ours."""
    (tmp_path / "app.py").write_text("raise ImportError('the user app.py was imported')\n")
    (tmp_path / "simulator.py").write_text("raise ImportError('the user simulator.py was imported')\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "__init__.py").write_text("raise ImportError('the user data/ was imported')\n")
    out = subprocess.run([sys.executable, "-c", SMOKE], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    cli = subprocess.run([sys.executable, "-m", "ppuu", "--help"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120)
    assert cli.returncode == 0, cli.stderr
    assert "world-model" in cli.stdout


def test_wheel_holds_only_the_ppuu_namespace_and_imports(tmp_path):
    """Build a wheel from a copy of the checkout, unpack it, import it from there in a fresh interpreter."""
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", "ppuu-work", "build", "dist", "*.egg-info",
                                                             "__pycache__", ".hypothesis", ".pytest_cache"))
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr
    (wheel,) = (tmp_path / "dist").glob("ppuu-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert {top for top in tops if not top.endswith(".dist-info")} == {"ppuu"}
    assert "ppuu/__init__.py" in names and "ppuu/simulator/sim.py" in names
    assert not any(name.startswith(("ppuu/tests/", "ppuu/scripts/")) for name in names)
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    env = dict(os.environ, PYTHONPATH=str(site))
    out = subprocess.run([sys.executable, "-c", SMOKE], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip().splitlines()[-1]).resolve() == (site / "ppuu" / "__init__.py").resolve()


@pytest.mark.parametrize("name", SUBPACKAGE_FOLDERS)
def test_no_module_imports_the_old_top_level_names(name):
    """Every import inside the package goes through ``ppuu.``; the bare folder names are not modules."""
    bad = []
    for path in list(ROOT.joinpath(name).rglob("*.py")) + [ROOT / "__init__.py"]:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            stripped = line.strip()
            for old in SUBPACKAGE_FOLDERS:
                if stripped.startswith((f"from {old}.", f"from {old} ", f"import {old}.", f"import {old} ")) \
                        or stripped == f"import {old}":
                    bad.append(f"{path.relative_to(ROOT)}:{number}: {stripped}")
    assert not bad
