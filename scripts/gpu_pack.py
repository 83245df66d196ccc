"""Pack what a lent GPU machine needs for `scripts/gpu_device_run.sh` into one folder under the carry limit.

    python scripts/gpu_pack.py --workdir ppuu-work --scene i80-sumo-15min-s0 \
        --run demo-wm=demo-quick-s0-world-model --run ego-wm=my-learned-ego-wm --out gpu-work

The device machine is offline and has torch but not this project, SUMO or gymnasium; what a run of the
GPU check reads travels with the working tree, at most 64 MiB in all (the `run` tool's `carry`). This writes:

- ``OUT/scenes/SCENE``: the scene, its trajectory table rewritten as zstd level-19 Parquet (about 50 MB for
  the default 15-minute scene, against 59 MB as saved);
- ``OUT/runs/NAME``: each ``--run NAME=RUN``'s ``checkpoint.pt`` and ``config.json`` (no ``best.pt``, no
  metrics), so that ``--world-model NAME`` finds it under ``--workdir OUT``;
- ``OUT/test-scene``: the test suite's small SUMO scene (``tests/conftest.py``; ``PPUU_TEST_SCENE`` points
  the GPU-marked tests at it where SUMO cannot run);
- ``WHEELS`` (default ``.whl`` beside ``scripts/``): gymnasium and the pure-Python wheels it needs, from
  PyPI (``--no-wheels`` to skip).

Then it prints the size of every part and fails if the total passes ``--limit-mib``. Nothing half-written is
left: each part is built in a temporary folder and renamed into place.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WHEELS = ("gymnasium", "farama-notifications", "cloudpickle")
RUN_FILES = ("checkpoint.pt", "config.json")


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


@contextmanager
def built_into(dest: Path):
    """Yield an empty temporary folder beside ``dest``; when the block ends without error, it replaces ``dest``."""
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        built = Path(tmp) / "built"
        built.mkdir()
        yield built
        if dest.exists():
            shutil.rmtree(dest)
        built.rename(dest)


def pack_scene(scene_dir: Path, dest: Path) -> None:
    """Copy a saved scene with its trajectory table recompressed (zstd, level 19: smallest, read as fast)."""
    import pyarrow.parquet as pq

    if not (scene_dir / "scene.json").is_file():
        raise SystemExit(f"gpu_pack: {scene_dir} is not a saved scene (no scene.json)")
    with built_into(dest) as built:
        for f in scene_dir.iterdir():
            if f.name == "trajectories.parquet":
                pq.write_table(pq.read_table(f), built / f.name, compression="zstd", compression_level=19)
            elif f.is_file():
                shutil.copy2(f, built / f.name)


def pack_run(run_dir: Path, dest: Path) -> None:
    missing = [name for name in RUN_FILES if not (run_dir / name).is_file()]
    if missing:
        raise SystemExit(f"gpu_pack: run {run_dir} has no {', '.join(missing)}")
    with built_into(dest) as built:
        for name in RUN_FILES:
            shutil.copy2(run_dir / name, built / name)


def pack_test_scene(dest: Path) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import SMALL_SCENE_WARMUP

    from ppuu.data.pipeline import generate_sumo_scene

    generate_sumo_scene("i80", minutes=1.5, seed=0, progress=False, warmup=SMALL_SCENE_WARMUP).save(dest)  # atomic


def download_wheels(dest: Path, python_version: str) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                    "--python-version", python_version, "-d", str(dest), *WHEELS], check=True)


def parse_run(text: str) -> tuple[str, str]:
    name, sep, run = text.partition("=")
    if not sep or not name or not run or "/" in name:
        raise argparse.ArgumentTypeError(f"--run wants NAME=RUN (NAME without '/'), got {text!r}")
    return name, run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", default="ppuu-work", help="workspace with scenes/ and runs/ (default: %(default)s)")
    p.add_argument("--scene", default="i80-sumo-15min-s0", help="scene under WORKDIR/scenes, or a scene folder")
    p.add_argument("--run", action="append", default=[], type=parse_run, metavar="NAME=RUN",
                   help="a run (name under WORKDIR/runs, or a folder) packed as OUT/runs/NAME; repeatable")
    p.add_argument("--out", default="gpu-work", help="the folder to write (default: %(default)s)")
    p.add_argument("--wheels", default=str(ROOT / ".whl"), help="where the wheels go (default: .whl in the checkout)")
    p.add_argument("--no-wheels", action="store_true", help="do not download the wheels")
    p.add_argument("--no-test-scene", action="store_true", help="do not generate the tests' small scene (needs SUMO)")
    p.add_argument("--python-version", default="3.12", help="the device's Python, for pip (default: %(default)s)")
    p.add_argument("--limit-mib", type=float, default=64.0, help="fail above this total (default: %(default)s)")
    args = p.parse_args(argv)

    workdir, out = Path(args.workdir), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    scene_dir = Path(args.scene) if Path(args.scene).is_dir() else workdir / "scenes" / args.scene
    (out / "scenes").mkdir(exist_ok=True)
    pack_scene(scene_dir, out / "scenes" / scene_dir.name)
    (out / "runs").mkdir(exist_ok=True)
    for name, run in args.run:
        pack_run(Path(run) if Path(run).is_dir() else workdir / "runs" / run, out / "runs" / name)
    if not args.no_test_scene:
        pack_test_scene(out / "test-scene")
    wheels = Path(args.wheels)
    if not args.no_wheels:
        download_wheels(wheels, args.python_version)

    parts = [out / "scenes" / scene_dir.name, *(out / "runs" / name for name, _ in args.run), out / "test-scene"]
    parts += [wheels] if not args.no_wheels else []
    print("| part | MiB |\n| --- | ---: |")
    for part in parts:
        print(f"| {part} | {folder_bytes(part) / 2**20:.1f} |")
    total = (folder_bytes(out) + (folder_bytes(wheels) if not args.no_wheels else 0)) / 2**20
    print(f"| total ({out}{'' if args.no_wheels else ' + ' + str(wheels)}) | {total:.1f} |")
    if total > args.limit_mib:
        print(f"gpu_pack: {total:.1f} MiB is over the {args.limit_mib:g}-MiB carry limit: pack fewer runs, or a "
              f"shorter scene", file=sys.stderr)
        return 1
    carry = [str(out)] + ([str(wheels)] if not args.no_wheels else [])
    print(f"\ncarry: {carry}; on the device: bash scripts/gpu_device_run.sh {out} LOG")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
