"""Benchmark the data path: SUMO generation, NGSIM read + conversion, and the Parquet cache.

    python scripts/bench_data.py [--site i80] [--minutes 15] [--seed 0] [--workdir /tmp/ppuu-bench]

Generates a scene with SUMO, writes its raw trajectories as an NGSIM 18-column
text file (the size of a real 15-minute I-80 file), reads that file back
(parse + convert to the canonical table), builds the scene (smoothing, quality
flags, splits), saves it, and loads it from the Parquet cache. Prints a
Markdown table; the figures go to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import torch


def timed(fn, repeats: int = 1):
    """(result of the last call, median seconds over ``repeats`` calls)."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return result, statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--site", default="i80", help="site SUMO simulates: i80 or us101 (default: %(default)s)")
    parser.add_argument("--minutes", type=float, default=15.0,
                        help="minutes of recorded traffic to generate (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the SUMO run and of the scene's train/val/test split (default: %(default)s)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/ppuu-bench"),
                        help="scratch folder for the NGSIM text file and the saved scene (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of the read and cache timings (median)")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)

    from ppuu.data.ngsim import read_ngsim, write_ngsim
    from ppuu.data.pipeline import build_scene, meta_for_site
    from ppuu.data.scene import Scene
    from ppuu.data.schema import RAW_COLUMNS
    from ppuu.data.sumo import generate_traffic

    args.workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    (raw, info), t_gen = timed(lambda: generate_traffic(args.site, args.minutes, args.seed, progress=False))
    rows.append(("SUMO generation (network, demand, simulation, FCD -> table)", t_gen, f"{len(raw):,} rows"))

    meta = meta_for_site("bench", args.site, "sumo", raw, seed=args.seed)
    scene, t_build = timed(lambda: build_scene(raw, meta))
    rows.append(("smoothing + quality flags + splits", t_build, f"{len(scene.vehicles):,} vehicles"))
    rows.append(("generation total (`ppuu data generate`, minus saving)", t_gen + t_build, ""))

    ngsim_path = args.workdir / f"{args.site}-{args.minutes:g}min.txt"
    _, t_write = timed(lambda: write_ngsim(raw[list(RAW_COLUMNS)], ngsim_path))
    size_mb = ngsim_path.stat().st_size / 1e6
    rows.append(("write NGSIM 18-column text", t_write, f"{size_mb:.0f} MB"))

    (table, _), t_read = timed(lambda: read_ngsim(ngsim_path), args.repeats)
    rows.append(("read + convert NGSIM text -> canonical table", t_read, f"{len(table):,} rows"))
    imported, t_import = timed(lambda: build_scene(read_ngsim(ngsim_path)[0], meta))
    rows.append(("read + convert + smooth + flag + split (full import)", t_import, ""))

    folder = imported.save(args.workdir / "scene")
    _, t_cache = timed(lambda: Scene.load(folder), args.repeats)
    rows.append(("load the scene from the Parquet cache", t_cache,
                 f"{t_read / t_cache:.0f}x faster than reading the text, {t_import / t_cache:.0f}x than importing"))

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, {args.site} {args.minutes:g} min seed {args.seed}\n")
    print("| step | seconds | notes |\n| --- | --- | --- |")
    for name, seconds, note in rows:
        print(f"| {name} | {seconds:.2f} | {note} |")


if __name__ == "__main__":
    main()
