"""Train a stable-baselines3 agent (PPO or SAC) on a scene and report its closed-loop success.

    python scripts/train_sb3.py --scene i80-sumo-15min-s0 --workdir ppuu-work --algo ppo \\
        --observation kinematics --timesteps 1000000 --seed 0 --threads 1

Trains on the training split with the native batched vector env (``--num-envs`` slots, one
simulator) and the default driving reward (:mod:`ppuu.app.gym_reward`), then drives every
episode of the test split closed loop with the trained policy (deterministic) and writes the
same results table as the planners and baselines (``ppuu evaluate ...``), with the human and
no-action rows beside it, to WORKDIR/reports/SCENE/.

The learning curve goes to WORKDIR/runs/RUN/curve.csv (and curve.png): every ``--log-every``
steps the training episodes finished since the last row (return, success, collision and
off-road rates), and every ``--eval-every`` steps the closed-loop success on the evaluation
split. The model is WORKDIR/runs/RUN/model.zip. Needs ``pip install ppuu[sb3]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scene", default=None, help="scene name or folder (default: the workspace's latest)")
    p.add_argument("--workdir", type=Path, default=Path("ppuu-work"),
                   help="workspace holding scenes/, runs/ and reports/ (default: %(default)s)")
    p.add_argument("--algo", choices=["ppo", "sac"], default="ppo",
                   help="stable-baselines3 algorithm; sac needs --action continuous (default: %(default)s)")
    p.add_argument("--observation", choices=["kinematics", "raster", "occupancy_grid"], default="kinematics",
                   help="the env's observation type (default: %(default)s)")
    p.add_argument("--history", type=int, default=1, help="raster frames (raster observation only)")
    p.add_argument("--action", choices=["continuous", "discrete_meta"], default="continuous",
                   help="the env's action type: normalised (acceleration, curvature), or 5 meta-actions "
                        "(lane left, idle, lane right, faster, slower) (default: %(default)s)")
    p.add_argument("--traffic", choices=["replay", "reactive"], default="replay",
                   help="other vehicles in training and evaluation: replay their recording or react "
                        "(IDM car-following) (default: %(default)s)")
    p.add_argument("--timesteps", type=int, default=200_000,
                   help="env-steps (0.1 s each) to train, summed over the envs (default: %(default)s)")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="stop training after this much wall-clock time (the evaluation follows)")
    p.add_argument("--num-envs", type=int, default=16,
                   help="slots of the native batched vector env (default: %(default)s)")
    p.add_argument("--n-steps", type=int, default=256, help="PPO: steps per env per rollout")
    p.add_argument("--n-epochs", type=int, default=10, help="PPO: passes over each rollout")
    p.add_argument("--gamma", type=float, default=0.99, help="discount per 0.1 s step")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the agent and of the closed-loop evaluations (default: %(default)s)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: %(default)s)")
    p.add_argument("--run", default=None, help="run name (default: sb3-ALGO-OBSERVATION-sSEED)")
    p.add_argument("--eval-split", choices=["train", "val", "test"], default="test",
                   help="split of the closed-loop evaluations, during training and at the end (default: %(default)s)")
    p.add_argument("--eval-every", type=int, default=0,
                   help="closed-loop evaluation every N steps (0: only at the end)")
    p.add_argument("--log-every", type=int, default=8192,
                   help="env-steps between rows of the learning curve (default: %(default)s)")
    p.add_argument("--config", type=json.loads, default=None, help="more env config overrides, as JSON")
    return p.parse_args(argv)


def env_config(args) -> dict:
    from ppuu.app.gym_config import default_config, merge_config

    observation = {"type": args.observation, **({"history": args.history} if args.observation == "raster" else {})}
    config = merge_config(default_config(), {"observation": observation, "action": {"type": args.action},
                                             "traffic": args.traffic, "split": "train"})
    return merge_config(config, args.config)


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    os.environ.setdefault("TQDM_DISABLE", "1")            # no progress bars in the evaluation's log
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    from stable_baselines3 import PPO, SAC
    from stable_baselines3.common.callbacks import BaseCallback

    from ppuu.app.cli_data import resolve_scene
    from ppuu.app.cli_evaluate import run_and_report
    from ppuu.app.sb3 import AgentController, make_sb3_env, policy_for
    from ppuu.data.scene import Scene
    from ppuu.simulator.evaluate import CONTROLLERS, evaluate, summarise

    scene_dir = resolve_scene(args.workdir, args.scene)
    scene = Scene.load(scene_dir)
    run = args.run or f"sb3-{args.algo}-{args.observation}-s{args.seed}"
    out = args.workdir / "runs" / run
    out.mkdir(parents=True, exist_ok=True)
    config = env_config(args)
    venv = make_sb3_env(args.num_envs, scene=scene, config=config)
    sim_config = venv.venv.envs.sim.config
    policy, policy_kwargs = policy_for(venv.observation_space)
    policy_kwargs["net_arch"] = [256, 256]
    if args.action == "continuous" and args.algo == "ppo":
        # Start near "no action" (the policy's mean is about 0) with a small spread (std 0.37 of
        # the normalised range): std 1 brakes and swerves at random and collides in most episodes.
        policy_kwargs["log_std_init"] = -1.0
    if args.algo == "ppo":
        batch = min(512, args.n_steps * args.num_envs)
        model = PPO(policy, venv, n_steps=args.n_steps, batch_size=batch, n_epochs=args.n_epochs, learning_rate=3e-4,
                    gamma=args.gamma, gae_lambda=0.95, ent_coef=0.0, policy_kwargs=policy_kwargs, seed=args.seed,
                    device="cpu")
    else:
        if args.action != "continuous":
            sys.exit("SAC needs --action continuous")
        model = SAC(policy, venv, buffer_size=200_000, batch_size=256, learning_starts=5_000, train_freq=1,
                    gamma=args.gamma, gradient_steps=1, policy_kwargs=policy_kwargs, seed=args.seed, device="cpu")

    def closed_loop(split: str):
        table = evaluate(scene, AgentController(model, config), split=split, config=sim_config, device="cpu",
                         progress=False, seed=args.seed)
        return summarise(table)

    rows, start = [], time.perf_counter()

    class Curve(BaseCallback):
        """Training episodes' outcomes every --log-every steps, closed-loop success every --eval-every."""

        def __init__(self):
            super().__init__()
            self.returns, self.outcomes, self.last_log, self.last_eval = [], [], 0, 0

        def _on_step(self) -> bool:
            dones = self.locals["dones"]
            for i in np.flatnonzero(dones):       # finished episodes only
                info = self.locals["infos"][i]
                self.outcomes.append(info["outcome"])
                if "episode" in info:
                    self.returns.append(info["episode"]["r"])
            t = self.num_timesteps
            if t - self.last_log >= args.log_every:
                self.last_log = t
                row = {"timesteps": t, "wall_s": round(time.perf_counter() - start, 1), "episodes": len(self.outcomes),
                       "mean_return": float(np.mean(self.returns)) if self.returns else float("nan")}
                for name in ("arrived", "collision", "offroad", "out_of_data"):
                    row[f"{name}_pct"] = 100.0 * self.outcomes.count(name) / max(len(self.outcomes), 1)
                if args.eval_every and t - self.last_eval >= args.eval_every:
                    self.last_eval = t
                    row[f"{args.eval_split}_success_pct"] = closed_loop(args.eval_split)["success_pct"]
                rows.append(row)
                print(json.dumps(row), flush=True)
                self.returns, self.outcomes = [], []
            return args.max_minutes is None or time.perf_counter() - start < 60 * args.max_minutes

    model.learn(args.timesteps, callback=Curve())
    train_seconds = time.perf_counter() - start
    model.save(out / "model.zip")
    import pandas as pd

    curve = pd.DataFrame(rows)
    curve.to_csv(out / "curve.csv", index=False)
    _plot(curve, out / "curve.png", run, args.eval_split)
    print(f"trained {model.num_timesteps} steps in {train_seconds / 60:.1f} min -> {out}")

    report_args = argparse.Namespace(split=args.eval_split, traffic=args.traffic, seeds=[args.seed],
                                     workdir=args.workdir, batch_size=None, device="cpu", episodes=None)
    from ppuu.simulator.episodes import get_course

    course = get_course(sim_config.course, scene.meta)
    entries = [("human", CONTROLLERS["human"], sim_config), ("no_action", CONTROLLERS["no_action"], sim_config),
               (run, AgentController(model, config), sim_config)]
    results = run_and_report(report_args, scene, course, sim_config, entries, f"SB3 {args.algo.upper()}", f"sb3-{run}")
    summary = {name: summarise(t)["success_pct"] for name, t in results.items()}
    (out / "result.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                 "config": config, "train_seconds": train_seconds,
                                                 "timesteps": model.num_timesteps,
                                                 "success_pct": summary}, indent=2, default=str))
    return 0


def _plot(curve, path: Path, title: str, split: str) -> None:
    if curve.empty:
        return
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
    ax[0].plot(curve["timesteps"], curve["mean_return"])
    ax[0].set(xlabel="timesteps", ylabel="mean episode return (training)", title=title)
    ax[1].plot(curve["timesteps"], curve["arrived_pct"], label="training episodes arrived %")
    ax[1].plot(curve["timesteps"], curve["collision_pct"], label="training collision %")
    column = f"{split}_success_pct"
    if column in curve:
        points = curve.dropna(subset=[column])
        ax[1].plot(points["timesteps"], points[column], "o-", label=f"{split} split success % (closed loop)")
    ax[1].set(xlabel="timesteps", ylabel="%")
    for a in ax:
        a.ticklabel_format(axis="x", style="sci", scilimits=(3, 3))      # 1e3 steps: labels do not overlap
    ax[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
