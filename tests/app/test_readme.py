"""README.md's quick start is what CI runs: the two must not drift apart."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def quickstart_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    block = section.split("```", 2)[1]
    return [line.strip() for line in block.splitlines()[1:] if line.strip() and not line.startswith("#")]


def test_quickstart_has_exactly_two_commands():
    assert len(quickstart_commands()) == 2


def test_ci_runs_the_readme_test_command():
    test_command = quickstart_commands()[1]
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_command in ci_lines


def readme_ppuu_commands() -> list[str]:
    """Every ``ppuu ...`` command of README.md's shell blocks, continuation lines joined, comments cut."""
    blocks, current = [], None
    for line in (ROOT / "README.md").read_text().splitlines():
        if line.startswith("```"):
            if current is None:
                current = [line[3:].strip()]
            else:
                blocks.append(current)
                current = None
        elif current is not None:
            current.append(line)
    commands = []
    for language, *body in blocks:
        if language not in ("bash", "sh", ""):
            continue
        for line in "\n".join(body).replace("\\\n", " ").splitlines():
            for part in line.split("  #")[0].split("&&"):
                if part.strip().startswith("ppuu "):
                    commands.append(part.strip())
    return commands


def test_every_ppuu_command_of_the_readme_parses():
    """The examples use flags and choices the command line has (names of runs and scenes are only read
    when a command runs)."""
    import shlex

    import pytest

    from ppuu.app.cli import build_parser

    commands = readme_ppuu_commands()
    assert len(commands) >= 10 and "ppuu demo" in commands
    for command in commands:
        try:
            build_parser().parse_args(shlex.split(command)[1:])
        except SystemExit:
            pytest.fail(f"README.md: `{command}` does not parse")
