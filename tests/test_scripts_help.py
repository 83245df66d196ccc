"""Every script of ``scripts/`` explains itself: ``--help`` works and every flag has a help text."""

from __future__ import annotations

import ast
import runpy
import sys

import pytest

from tests.scripts import SCRIPTS

PYTHON_SCRIPTS = sorted(p.name for p in SCRIPTS.glob("*.py"))


def flags_without_help(source: str) -> list[str]:
    """The first argument of every ``add_argument(...)`` call in ``source`` that has no ``help=``."""
    missing = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument":
            if not any(keyword.arg == "help" for keyword in node.keywords):
                first = node.args[0] if node.args else None
                missing.append(first.value if isinstance(first, ast.Constant) else ast.unparse(node))
    return missing


def test_the_check_finds_a_flag_without_help():
    source = "p.add_argument('--a', help='x')\np.add_argument('--b', type=int)\n"
    assert flags_without_help(source) == ["--b"]


@pytest.mark.parametrize("name", PYTHON_SCRIPTS)
def test_every_flag_has_a_help_text(name):
    assert flags_without_help((SCRIPTS / name).read_text()) == [], f"scripts/{name}: flags without help="


@pytest.mark.parametrize("name", PYTHON_SCRIPTS)
def test_help_prints_a_usage_and_exits_cleanly(name, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [str(SCRIPTS / name), "--help"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(SCRIPTS / name), run_name="__main__")
    assert exit_info.value.code in (0, None)
    assert "usage:" in capsys.readouterr().out
