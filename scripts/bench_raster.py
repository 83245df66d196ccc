"""Benchmark the batched rasteriser: observations per second for a few batch sizes.

Usage::

    python scripts/bench_raster.py                      # CPU (2 threads) and CUDA if available
    python scripts/bench_raster.py --batches 1 64 1024 4096 --vehicles 60 --threads 2

Each observation has ``--vehicles`` other vehicles in dense I-80-like traffic (lanes of
3.66 m, vehicles within +-80 m of the ego, 5 % trucks), so about a third of them fall on the
raster. Prints a Markdown table: median wall time of ``--repeats`` calls after a warm-up
(the warm-up also builds the cached road texture, timed separately), and the best call
(shared or virtual machines are noisy: the best call shows what the code costs, the median
what a run met).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ppuu.data.scene import Ramp, SceneMeta  # noqa: E402
from ppuu.simulator.costs import CostConfig, all_costs  # noqa: E402
from ppuu.simulator.raster import RasterConfig, render, road_texture  # noqa: E402
from ppuu.simulator.road import Road  # noqa: E402

LANE = 3.6576


def i80_road() -> Road:
    w = 6 * LANE
    meta = SceneMeta(name="bench", site="i80", source="sumo", lane_widths=[LANE] * 6, section_length=502.92,
                     ramps=[Ramp(lane=7, kind="on", x_start=0.0, x_end=213.0, y_left=-w, y_right=-w - LANE)])
    return Road.from_meta(meta)


def make_batch(batch: int, vehicles: int, device: torch.device, dtype: torch.dtype, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    lane_y = -(torch.arange(6, dtype=torch.float64) + 0.5) * LANE
    ego = torch.stack([torch.rand(batch, generator=g, dtype=torch.float64) * 400 + 20,
                       lane_y[torch.randint(0, 6, (batch,), generator=g)]], -1)
    heading = (torch.rand(batch, generator=g, dtype=torch.float64) - 0.5) * 0.1
    ox = ego[:, :1] + (torch.rand(batch, vehicles, generator=g, dtype=torch.float64) - 0.5) * 160
    oy = lane_y[torch.randint(0, 6, (batch, vehicles), generator=g)] + torch.randn(batch, vehicles, generator=g,
                                                                                      dtype=torch.float64) * 0.3
    oh = torch.randn(batch, vehicles, generator=g, dtype=torch.float64) * 0.03
    size = torch.tensor([4.5, 1.9], dtype=torch.float64).repeat(batch, vehicles, 1)
    size += torch.rand(batch, vehicles, 2, generator=g, dtype=torch.float64) * torch.tensor([1.5, 0.3])
    trucks = torch.rand(batch, vehicles, generator=g) < 0.05
    size[trucks] = torch.tensor([16.0, 2.6], dtype=torch.float64)
    kw = dict(device=device, dtype=dtype)
    return (ego.to(**kw), heading.to(**kw), torch.tensor([4.5, 1.9]).expand(batch, 2).to(**kw),
            torch.stack([ox, oy], -1).to(**kw), oh.to(**kw), size.to(**kw))


def time_call(fn, device: torch.device, repeats: int) -> tuple[float, float]:
    """(median, best) seconds per call over ``repeats`` calls after one warm-up call."""
    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 64, 1024],
                    help="observations rendered per call, one row each (default: %(default)s)")
    ap.add_argument("--vehicles", type=int, default=60,
                    help="other vehicles around each ego, within +-80 m (default: %(default)s)")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: %(default)s)")
    ap.add_argument("--repeats", type=int, default=7,
                    help="timed calls per row after one warm-up; median and best reported (default: %(default)s)")
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32",
                    help="floating-point type of the inputs and the raster (default: %(default)s)")
    ap.add_argument("--devices", nargs="+", default=None, help="default: cpu, and cuda when available")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    devices = args.devices or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    road = i80_road()
    config = RasterConfig()
    print(f"torch {torch.__version__}, {args.threads} CPU threads, {args.dtype}, N = {args.vehicles} vehicles, "
          f"raster {config.length_px} x {config.width_px} px at {config.pixels_per_metre} px/m")
    if "cuda" in devices:
        print(f"CUDA device: {torch.cuda.get_device_name(0)}")
    print()
    print("| device | batch | render ms (median / best) | observations/s (median / best) "
          "| render + costs ms (median) | observations/s (median) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name in devices:
        device = torch.device(name)
        like = torch.zeros((), device=device, dtype=dtype)
        t0 = time.perf_counter()
        road_texture(road, config, like)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        build = time.perf_counter() - t0
        costs = CostConfig().for_road(road)
        for batch in args.batches:
            ego, heading, esize, centre, oh, osize = make_batch(batch, args.vehicles, device, dtype)
            speed = torch.full((batch,), 15.0, device=device, dtype=dtype)

            def draw():
                return render(road, ego, heading, esize, centre, oh, osize, None, config)

            def draw_and_cost():
                return all_costs(draw(), speed, esize, config, costs)

            t_r, best = time_call(draw, device, args.repeats)
            t_c, _ = time_call(draw_and_cost, device, args.repeats)
            print(f"| {name} | {batch} | {t_r * 1e3:.2f} / {best * 1e3:.2f} | {batch / t_r:,.0f} / {batch / best:,.0f} "
                  f"| {t_c * 1e3:.2f} | {batch / t_c:,.0f} |")
        print(f"\n(road texture built once per device/dtype in {build * 1e3:.0f} ms on {name})\n")


if __name__ == "__main__":
    main()
