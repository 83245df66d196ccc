"""Cost functions: their shape on controlled scenes, and their speed (BENCHMARKS.md "Costs").

Prints three Markdown tables:

1. the lane cost against the ego's offset from its lane centre (I-80 lanes, a 4.5 x 1.8 m
   car), at headings 0 and 3 degrees, for lines drawn one pixel wide (the default) and at
   the painted 0.15 m, with the share of offsets between 0.35 m and 1.45 m where the cost
   does not move (slope under 0.05 per m): a staircase cannot say where the line is;
2. the proximity cost of a lane-centred neighbour in the next lane (side by side), for
   pairs of vehicle widths, at the former lateral reach (``lateral_widths=1.0``) and the
   default;
3. milliseconds per ``all_costs`` call on B = 1024 observations (random images), at the
   default pose and with a pose, for both reductions (median and best of ``--repeats``);
   with ``--compare-with OTHER/costs.py``, another version of this module (e.g. the main
   branch's) is timed in the same process, calls interleaved, at the default pose;
4. with ``--scene DIR``: the recorded human and no-action controllers on the scene's test
   split (replay), per-step mean proximity cost at several lateral reaches
   (``--lateral-widths``), and how often the lane cost is high (the human's lane changes).

Run: ``OMP_NUM_THREADS=1 python scripts/bench_costs.py`` (one torch thread; ``ppuu`` importable).
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import statistics
import sys
import time

import torch

from ppuu.data.scene import SceneMeta
from ppuu.data.sites import LANE_WIDTH
from ppuu.simulator.costs import CostConfig, all_costs, lane_cost, proximity_cost
from ppuu.simulator.raster import RasterConfig, render
from ppuu.simulator.road import Road

F64 = dict(dtype=torch.float64)


def straight_road() -> Road:
    return Road.from_meta(SceneMeta(name="bench", site="i80", source="sumo", lane_widths=[LANE_WIDTH] * 6,
                                    section_length=500.0))


def draw(road: Road, ego_y: torch.Tensor, heading: float, raster: RasterConfig, size=(4.5, 1.8),
         others: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    B = len(ego_y)
    ego = torch.stack([torch.full((B,), 200.0, **F64), ego_y], -1)
    sizes = torch.tensor([size] * B, **F64)
    o = torch.zeros(B, 0, 5, **F64) if others is None else others
    img = render(road, ego, torch.full((B,), heading, **F64), sizes, o[..., 0:2], o[..., 2], o[..., 3:5], None, raster)
    return img, sizes


def lane_table(road: Road) -> None:
    costs = CostConfig().for_road(road)
    centre = -2.5 * LANE_WIDTH
    shown = [0.0, 0.3, 0.6, 0.9, 1.2, 1.5, LANE_WIDTH / 2]
    fine = torch.linspace(0.0, LANE_WIDTH / 2, 601, **F64)
    print("| lines | heading | " + " | ".join(f"{x:.2f} m" for x in shown) + " | flat share 0.35-1.45 m |")
    print("| --- | ---: |" + " ---: |" * len(shown) + " ---: |")
    for name, width in (("one pixel (default)", None), ("painted 0.15 m", 0.15)):
        raster = RasterConfig(marking_width=width)
        for heading in (0.0, 3.0):
            offsets = torch.cat([torch.tensor(shown, **F64), fine])
            img, sizes = draw(road, centre - offsets, math.radians(heading), raster)
            cost = lane_cost(img, torch.zeros(len(offsets), **F64), sizes, raster, costs)
            c_shown, c_fine = cost[:len(shown)], cost[len(shown):]
            slope = (c_fine[1:] - c_fine[:-1]) / (fine[1:] - fine[:-1])
            mid = (fine[:-1] > 0.35) & (fine[:-1] < 1.45)
            flat = float((slope[mid] < 0.05).double().mean())
            monotone = bool((c_fine[1:] >= c_fine[:-1] - 1e-3).all())
            print(f"| {name} | {heading:.0f} deg | " + " | ".join(f"{float(c):.3f}" for c in c_shown)
                  + f" | {100 * flat:.0f} %{'' if monotone else ' (not monotone)'} |")
    print("\n(offset of the ego's centre from its lane centre; the line is at 1.83 m)\n")


def neighbour_table(road: Road) -> None:
    centre = -2.5 * LANE_WIDTH
    pairs = [(1.6, 1.6), (1.8, 1.8), (1.85, 1.85), (2.0, 2.0), (1.8, 2.5), (2.5, 1.8)]
    print("| ego width m | neighbour width m | side gap m | cost, lateral_widths=1.0 (before) "
          "| cost, lateral_widths=0.5 (default) |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for ego_w, other_w in pairs:
        others = torch.tensor([[[200.0, centre + LANE_WIDTH, 0.0, 4.5, other_w]]], **F64)
        img, sizes = draw(road, torch.tensor([centre], **F64), 0.0, RasterConfig(), (4.5, ego_w), others)
        speed = torch.tensor([10.0], **F64)
        row = [float(proximity_cost(img, speed, sizes, config=CostConfig(lateral_widths=w))) for w in (1.0, 0.5)]
        gap = LANE_WIDTH - (ego_w + other_w) / 2
        print(f"| {ego_w:.2f} | {other_w:.2f} | {gap:.2f} | {row[0]:.3f} | {row[1]:.3f} |")
    print("\n(both lane-centred, side by side, 4.5 m long, ego at 10 m/s; max reduction)\n")


def load_module(path: str):
    """Another version of the costs module, from a file (its imports resolve to this package)."""
    spec = importlib.util.spec_from_file_location("other_costs", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["other_costs"] = module
    spec.loader.exec_module(module)
    return module


def timing_table(road: Road, repeats: int, batch: int, other: str | None = None, with_pose: bool = True) -> None:
    g = torch.Generator().manual_seed(0)
    img = torch.rand(batch, 4, 117, 24, generator=g)
    speed = 30 * torch.rand(batch, generator=g)
    size = torch.tensor([[4.5, 1.8]]).repeat(batch, 1)
    pose = torch.cat([torch.randn(batch, 2, generator=g), 0.05 * torch.randn(batch, 1, generator=g)], 1)
    this = sys.modules[CostConfig.__module__]
    versions = [("this", this)] + ([(other, load_module(other))] if other else [])
    print(f"| costs module | reduction | pose | all_costs ms, B={batch} (median) | best |")
    print("| --- | --- | --- | ---: | ---: |")
    for reduction in ("max", "sum"):
        calls = []
        for label, module in versions:
            config = module.CostConfig(reduction=reduction)
            config = config.for_road(road) if hasattr(config, "for_road") else config
            calls.append((label, "default (image centre)",
                          lambda m=module, c=config: m.all_costs(img, speed, size, config=c)))
            if module is this and with_pose:
                calls.append((label, "given (B, 3)", lambda c=config: all_costs(img, speed, size, config=c, pose=pose)))
        times = [[] for _ in calls]
        for _ in range(repeats + 1):                   # interleaved; the first round warms up
            for k, (_, _, call) in enumerate(calls):
                t0 = time.perf_counter()
                call()
                times[k].append(time.perf_counter() - t0)
        for (label, name, _), t in zip(calls, times):
            t = t[1:]
            print(f"| {label} | {reduction} | {name} | {1e3 * statistics.median(t):.1f} | {1e3 * min(t):.1f} |")
    print(f"\n(random images, float32, CPU, {torch.get_num_threads()} torch thread(s), {repeats} calls each)\n")


def reach_table(scene_dir: str, lateral_widths: list[float]) -> None:
    """Per-step mean costs of the human and no-action controllers, one closed loop each, with
    the proximity cost re-evaluated on every step's observation at each lateral reach."""
    from ppuu.data.scene import Scene
    from ppuu.simulator.episodes import RUNNING
    from ppuu.simulator.evaluate import human, no_action
    from ppuu.simulator.sim import BatchedSimulator, SimConfig

    scene = Scene.load(scene_dir)
    head = " | ".join(f"proximity, lateral_widths={w}" for w in lateral_widths)
    print(f"| controller | episodes | {head} | lane | off-road | steps with lane > 0.5 | episodes with lane > 0.5 |")
    print("| --- | ---: |" + " ---: |" * (len(lateral_widths) + 4))
    for name, controller in (("human", human), ("no_action", no_action)):
        sim = BatchedSimulator(scene, SimConfig(), device="cpu")
        ids = sim.episode_vehicles("test")
        observation = sim.reset(ids)
        sums = torch.zeros(len(lateral_widths), len(ids), dtype=torch.float64)
        high = torch.zeros(len(ids), dtype=torch.int64)
        with torch.no_grad():
            while not bool(sim.done.all()):
                running = (sim.outcome == RUNNING).nonzero().squeeze(1)
                result = sim.step(controller(observation, sim))
                observation = result.observation
                image = sim.image[running, -1]
                for k, w in enumerate(lateral_widths):
                    config = CostConfig(lateral_widths=w)
                    sums[k, running] += proximity_cost(image, sim.ego.speed[running], sim.size[running],
                                                       sim.config.raster, config).double()
                high[running] += (result.costs.lane[running] > 0.5).long()
        steps = sim.steps.clamp(min=1).double()
        metrics = sim.metrics()
        prox = " | ".join(f"{float((sums[k] / steps).mean()):.4f}" for k in range(len(lateral_widths)))
        print(f"| {name} | {len(ids)} | {prox} | {float(metrics['lane_cost'].double().mean()):.4f} "
              f"| {float(metrics['offroad_cost'].double().mean()):.4f} "
              f"| {int(high.sum())} of {int(sim.steps.sum())} | {int((high > 0).sum())} |")
    print("\n(per-step means over each episode, then over episodes; lane and off-road at the defaults)\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30,
                        help="timed all_costs calls per row after one warm-up round (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=1024,
                        help="observations (random images) per timed all_costs call (default: %(default)s)")
    parser.add_argument("--compare-with", help="another costs.py to time beside this one (default pose)")
    parser.add_argument("--no-pose", action="store_true", help="time the default pose only")
    parser.add_argument("--timing-last", action="store_true", help="time after the other tables (warm allocator)")
    parser.add_argument("--scene", help="scene folder for the controller table (e.g. WORKDIR/scenes/i80-sumo-15min-s0)")
    parser.add_argument("--lateral-widths", type=float, nargs="+", default=[1.0, 0.75, 0.5, 0.4, 0.25, 0.05],
                        help="lateral reaches of the proximity cost (CostConfig.lateral_widths, in ego widths) "
                             "compared in the --scene table, one column each (default: %(default)s)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    road = straight_road()
    # Timing first: the tables' large float64 tensors, once freed, change how the allocator
    # serves later (B, H, W) tensors (page faults or not); --timing-last shows that state.
    if not args.timing_last:
        timing_table(road, args.repeats, args.batch, args.compare_with, not args.no_pose)
    lane_table(road)
    neighbour_table(road)
    if args.timing_last:
        timing_table(road, args.repeats, args.batch, args.compare_with, not args.no_pose)
    if args.scene:
        reach_table(args.scene, args.lateral_widths)


if __name__ == "__main__":
    main()
