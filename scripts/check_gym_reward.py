"""Check that the gym's default reward ranks driving above standing still above crashing.

    python scripts/check_gym_reward.py --scene i80-sumo-15min-s0 --workdir ppuu-work --split test --threads 1

Drives every episode of the split with three controllers and sums the default driving
reward (:class:`ppuu.app.gym_reward.DrivingReward`) over each episode
(:func:`ppuu.app.gym_reward.compare_controllers`): ``human`` (the
recording's actions), ``no_action`` (keep speed and heading) and ``swerve`` (steer left as
hard as the bounds allow: off the road or into a neighbour within a second or two). Prints
the mean return, success rate and mean episode length of each, and exits 1 unless
human > no_action > swerve.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scene", default=None,
                   help="scene name under WORKDIR/scenes or a scene folder (default: the workspace's most recent)")
    p.add_argument("--workdir", type=Path, default=Path("ppuu-work"),
                   help="workspace holding scenes/ (default: %(default)s)")
    p.add_argument("--split", default="test", choices=["train", "val", "test"],
                   help="split whose episodes are driven (default: %(default)s)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: %(default)s)")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    from ppuu.app.cli_data import resolve_scene
    from ppuu.app.gym_reward import compare_controllers
    from ppuu.data.scene import Scene

    scene = Scene.load(resolve_scene(args.workdir, args.scene))
    results = compare_controllers(scene, args.split)
    episodes = results["human"]["episodes"]
    print(f"default driving reward on {scene.meta.name}, {args.split} split ({episodes} episodes)\n")
    print("| controller | mean return | success % | mean steps |\n| --- | ---: | ---: | ---: |")
    for name, r in results.items():
        print(f"| {name} | {r['mean_return']:.2f} | {r['success_pct']:.1f} | {r['mean_steps']:.1f} |")
    ok = results["human"]["mean_return"] > results["no_action"]["mean_return"] > results["swerve"]["mean_return"]
    print("\nhuman > no_action > swerve:", "yes" if ok else "NO")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
