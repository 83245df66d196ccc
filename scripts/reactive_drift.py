"""Measure how far reactive traffic drifts from its recording (issue 7's "ghost" measurement), and how often an
ego that stops is hit, in replay and in reactive traffic.

    python scripts/reactive_drift.py --scene ppuu-work/scenes/i80-sumo-15min-s0 [--episodes 40] [--seconds 6]

Runs the first ``--episodes`` test episodes for ``--seconds`` of driving with the
``--controller`` (default ``human``: the ego drives its recorded actions, so in faithful
reactive traffic every other vehicle should stay on its own recording), then counts the
reactive vehicles, over all episodes, that end more than ``--tolerance`` m (along x) from
where their recording puts them at that frame. The replaced vehicle itself is not counted.
Prints one Markdown line per controller. Then (unless ``--skip-stopped``) every test episode runs with
an ego that brakes at 4 m/s^2 to a stop and stays there for ``--stop-seconds``: the share of them
hit from behind (collision) in replay and in reactive traffic.
"""

from __future__ import annotations

import argparse

import torch


def drift(scene, controller_name: str, episodes: int, seconds: float, tolerance: float) -> dict:
    from ppuu.simulator.evaluate import CONTROLLERS
    from ppuu.simulator.sim import BatchedSimulator, SimConfig

    sim = BatchedSimulator(scene, SimConfig(traffic="reactive"), device="cpu")
    ids = sim.episode_vehicles("test")[:episodes]
    controller = CONTROLLERS[controller_name]
    observation = sim.reset(ids)
    with torch.no_grad():
        for _ in range(round(seconds / sim.dt)):
            observation = sim.step(controller(observation, sim)).observation
    slots = torch.arange(len(ids))
    traffic = sim.others(slots, sim.frame)
    error = (traffic.centre[..., 0] - sim.log.centre[traffic.rows][..., 0]).abs()
    error = torch.where(traffic.mask, error, torch.zeros_like(error))
    far = error > tolerance
    return {"controller": controller_name, "episodes": len(ids), "still_running": int((~sim.done).sum()),
            "vehicles": int(traffic.mask.sum()), "far": int(far.sum()), "max_m": float(error.max())}


def stopped_ego_hits(scene, seconds: float) -> dict:
    """Collision % of every test episode whose ego brakes at 4 m/s^2 to a stop, per traffic kind."""
    from ppuu.simulator.episodes import COLLISION
    from ppuu.simulator.evaluate import run_episodes
    from ppuu.simulator.sim import BatchedSimulator, SimConfig

    def brake(observation, sim):
        return torch.tensor([[-4.0, 0.0]], dtype=sim.dtype).expand(sim.batch_size, 2)

    hits = {}
    for traffic in ("replay", "reactive"):
        sim = BatchedSimulator(scene, SimConfig(traffic=traffic), device="cpu")
        table = run_episodes(sim, sim.episode_vehicles("test"), brake, progress=False,
                             max_steps=round(seconds / sim.dt))
        hits[traffic] = 100.0 * float((table["outcome"] == COLLISION).mean())
    hits["episodes"] = len(table)
    return hits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scene", required=True, help="scene folder")
    parser.add_argument("--episodes", type=int, default=40,
                        help="first N test episodes of the drift measurement (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=6.0,
                        help="seconds driven per episode before the drift is measured (default: %(default)s)")
    parser.add_argument("--tolerance", type=float, default=0.5, help="m along x")
    parser.add_argument("--controllers", nargs="+", default=["human"], choices=["human", "no_action"],
                        help="ego controllers of the drift measurement, one row each; human drives its recorded "
                             "actions (default: %(default)s)")
    parser.add_argument("--stop-seconds", type=float, default=8.0, help="s of driving of the stopping ego")
    parser.add_argument("--skip-stopped", action="store_true", help="skip the stopped-ego measurement")
    args = parser.parse_args()
    torch.set_num_threads(1)

    from ppuu.data.scene import Scene

    scene = Scene.load(args.scene)
    print(f"scene {scene.meta.name}: first {args.episodes} test episodes, {args.seconds} s each, reactive traffic\n")
    print("| controller | episodes | running at the end | vehicles at the end | > {:.1f} m from recording | max (m) |"
          .format(args.tolerance))
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name in args.controllers:
        r = drift(scene, name, args.episodes, args.seconds, args.tolerance)
        print(f"| {r['controller']} | {r['episodes']} | {r['still_running']} | {r['vehicles']} | {r['far']} | "
              f"{r['max_m']:.1f} |", flush=True)
    if not args.skip_stopped:
        h = stopped_ego_hits(scene, args.stop_seconds)
        print(f"\nego braking at 4 m/s^2 to a stop, {args.stop_seconds} s, every test episode ({h['episodes']}): "
              f"hit {h['replay']:.1f} % in replay, {h['reactive']:.1f} % in reactive traffic")


if __name__ == "__main__":
    main()
