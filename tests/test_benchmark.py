"""scripts/benchmark.py, every benchmark in one run: end to end with tiny sizes on the small scene."""

import re

import pytest

from tests.app.conftest import scene, scene_dir, scene_workdir  # noqa: F401  (fixtures of the app tests)
from tests.app.test_drive import runs  # noqa: F401  (tiny-world and tiny-policy as real checkpoints)
from tests.scripts import load_script

TABLES = ("Simulator", "Closed-loop evaluation", "World-model training throughput", "Policy training throughput",
          "MPUR step at the reference sizes", "MPC decision latency", "Peak memory of the training data path")


def benchmark_module():
    return load_script("benchmark")


def rows_of(text: str, title: str) -> list[list[str]]:
    """The body rows of the table under ``#### title``, as lists of cells."""
    section = text.split(f"#### {title}\n", 1)[1].split("####", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("| ")]
    assert lines[0].startswith("| what | setting | value | unit | reference (SPEC §8) | x better |")
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


def number(cell: str) -> float:
    assert re.fullmatch(r"-?[\d,]+(\.\d+)?(e-?\d+)?", cell), cell
    return float(cell.replace(",", ""))


def test_benchmark_runs_every_part_on_tiny_models(runs, scene, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "bench.md"
    code = benchmark_module().main(["--workdir", str(runs), "--scene", scene.meta.name, "--world-model", "tiny-world",
                                    "--policy", "tiny-policy", "--device", "cpu", "--threads", "1", "--quick",
                                    "--out", str(out)])
    text = out.read_text()
    assert code == 0, text + capsys.readouterr().err[-3000:]
    assert "Machine: " in text and "torch " in text and "load average at start" in text
    assert f"Command: `python scripts/benchmark.py --workdir {runs}" in text
    for title in TABLES:
        rows = rows_of(text, title)
        assert rows, title
        for what, setting, value, unit, reference, ratio in rows:
            if value.startswith("not measured"):        # only the CPU's missing optimised policy path
                assert "CUDA-only" in value and "optimised" in what
                continue
            # a rise above the start can be 0: the allocator may reuse memory the process already holds
            minimum = 0 if "above the start" in what else 1e-12
            assert number(value) >= minimum and unit, (title, what, value)
            if reference != "-":                        # a reference figure comes with its ratio
                number(reference.split(" ")[0])
                assert number(ratio.rstrip("x")) > 0
    assert len(rows_of(text, "Simulator")) == 2                              # --quick: batches 1 and 4
    closed = rows_of(text, "Closed-loop evaluation")
    assert [r[0].split(":")[0] for r in closed[::2]] == ["closed loop, no action", "closed loop, policy `tiny-policy` "
                                                         "(il)", closed[4][0].split(":")[0]]
    assert closed[4][0].startswith("closed loop, MPC `tiny-world`")
    assert closed[1][4].startswith("2.37 s/episode")                     # no action per episode: SPEC §8's
    stderr = capsys.readouterr().err
    assert stderr.count("[benchmark") >= len(TABLES)                          # a progress line per part


def test_benchmark_says_what_it_could_not_measure(scene_workdir, scene, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "bench.md"
    code = benchmark_module().main(["--workdir", str(scene_workdir), "--scene", scene.meta.name, "--device", "cpu",
                                    "--quick", "--skip", "sim", "closed-loop", "world-model", "memory",
                                    "--out", str(out)])
    text = out.read_text()
    assert code == 0, text
    for title in ("Policy training throughput", "MPUR step at the reference sizes", "MPC decision latency"):
        (row,) = rows_of(text, title)
        assert row[2] == "not measured: no --world-model given" or \
            row[2] == "not measured: no --world-model given (its image settings are used)"
    assert "#### Simulator" not in text


def test_a_killed_benchmark_keeps_the_parts_it_finished(scene_workdir, scene, tmp_path):  # noqa: F811
    """The file is rewritten after every part, so a run stopped at a time limit keeps what it measured."""
    module = benchmark_module()
    out = tmp_path / "bench.md"

    def killed(ctx):
        raise KeyboardInterrupt                     # what a time limit's signal does to the part in progress

    module.PARTS = {"sim": module.PARTS["sim"], "mpc": ("MPC decision latency", killed)}
    with pytest.raises(KeyboardInterrupt):
        module.main(["--workdir", str(scene_workdir), "--scene", scene.meta.name, "--device", "cpu", "--quick",
                     "--out", str(out)])
    text = out.read_text()
    assert "(partial: 1 of 2 parts so far)" in text and len(rows_of(text, "Simulator")) == 2
    assert "#### MPC decision latency" not in text and not list(tmp_path.glob("*.tmp"))


def test_benchmark_rejects_bad_input(scene_workdir, scene):  # noqa: F811
    module = benchmark_module()
    with pytest.raises(SystemExit, match="no scene 'nowhere'"):
        module.main(["--workdir", str(scene_workdir), "--scene", "nowhere"])
    with pytest.raises(SystemExit, match="no checkpoint 'missing'"):
        module.main(["--workdir", str(scene_workdir), "--scene", scene.meta.name, "--policy", "missing"])
    with pytest.raises(SystemExit):
        module.main(["--workdir", str(scene_workdir), "--scene", scene.meta.name, "--sim-steps", "0"])
