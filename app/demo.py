"""The whole job end to end: scene, world model, policies, closed-loop evaluation, one report.

``ppuu demo`` runs the project's main recipe as a chain of the ordinary commands (each stage is
exactly a ``ppuu ...`` command line, listed in the report so that anyone can rerun one):

1. ``scene``: generate the I-80-like scene with SUMO (skipped when it exists).
2. ``world-model``: train the kinematic-ego world model (Sobal et al. 2022; the traffic step blind
   to the ego, ``--ego-conditioning none``: the variant MPC and MPUR did best with, BENCHMARKS.md).
3. ``il``: the imitation baseline (one-step imitation of the recorded actions).
4. ``mpc-il``: amortised MPC, the MPUR warm start: one-step imitation of the MPC planner's decisions
   on training contexts, planned through the world model (:mod:`ppuu.planner.mpc_targets`).
5. ``mpur``: MPUR from that warm start, with the uncertainty cost and speed keeping.
6. ``evaluate``: the recording, no action, IL, MPC-IL and MPUR on the test split, closed loop.
7. ``mpc``: MPC through the world model on (a subset of) the same episodes.
8. ``gif``: the MPUR policy driving one test episode, with the model's futures drawn.
9. ``report``: one folder with the results table (SPEC §7 form), figures, GIF, commands, configs.

The policies hold the wheel straight (``--steering straight``) and choose the acceleration: the
recorded drivers barely steer, and learned steering drifts across the lanes (BENCHMARKS.md,
"Amortised MPC and straight steering").

A stage that finished is recorded in ``WORKDIR/demo/RECIPE/stages.json`` and skipped when the demo
runs again; a training stage that was interrupted resumes from its own checkpoint (the trainers
resume a run of the same name). Every stage uses the GPU when there is one (the commands' default
device).
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ppuu.app.steps import FinishedSteps

#: Planner settings that drove best on the default scene (BENCHMARKS.md, "Policy learning and MPC").
SPEED_WEIGHT = 0.5


@dataclass(frozen=True)
class DemoProfile:
    """How big each stage is.

    Attributes:
        name: the profile's name (``--profile``).
        description: one line for ``--help`` and the report.
        minutes: length of the generated scene, min.
        world_model: extra flags of ``ppuu train world-model``.
        il, mpc_il, mpur: extra flags of ``ppuu train policy`` for the three policies.
        evaluate_episodes: test episodes for the policies (None = all).
        mpc_episodes: test episodes for MPC (evenly spaced; None = all).
        mpc: extra flags of the MPC evaluation.
        gif_frames: frames of the GIF (0.1 s each).
    """

    name: str
    description: str
    minutes: float
    world_model: tuple[str, ...]
    il: tuple[str, ...]
    mpc_il: tuple[str, ...]
    mpur: tuple[str, ...]
    evaluate_episodes: int | None
    mpc_episodes: int | None
    mpc: tuple[str, ...] = field(default=())
    gif_frames: int = 150


_POLICY_CPU = ("--horizon", "15", "--speed-weight", str(SPEED_WEIGHT), "--steering", "straight", "--val-every", "0")
_MPC_CPU = ("--mpc-horizon", "15", "--mpc-futures", "2", "--mpc-iterations", "3", "--mpc-replan-every", "3",
            "--mpc-uncertainty-weight", "0", "--mpc-speed-weight", str(SPEED_WEIGHT))

PROFILES: dict[str, DemoProfile] = {
    "quick": DemoProfile(
        name="quick", description="about 15 minutes on 2 CPU cores: small models, short training, MPC on "
                                  "16 test episodes",
        minutes=15.0,
        world_model=("--profile", "cpu", "--steps", "800"),
        il=("--batch-size", "64", "--steps", "100"),
        mpc_il=("--batch-size", "64", "--steps", "300", "--planner-contexts", "1600", "--planner-iterations", "5",
                "--planner-lr", "0.2", *_POLICY_CPU),
        mpur=("--steps", "70", "--batch-size", "24", "--copies", "2", "--lr", "3e-4", "--warmup-steps", "10",
              *_POLICY_CPU),
        evaluate_episodes=None, mpc_episodes=16, mpc=_MPC_CPU, gif_frames=100),
    "tiny": DemoProfile(
        name="tiny", description="a smoke run of every stage in about a minute (tests; results mean nothing)",
        minutes=1.5,
        world_model=("--profile", "cpu", "--steps", "6", "--batch-size", "4", "--val-every", "0",
                     "--stats-windows", "64"),
        il=("--batch-size", "8", "--steps", "4", "--val-every", "0"),
        mpc_il=("--batch-size", "8", "--steps", "4", "--horizon", "4", "--planner-contexts", "8",
                "--planner-iterations", "2", "--planner-lr", "0.2", "--steering", "straight", "--val-every", "0"),
        mpur=("--steering", "straight", "--steps", "2", "--horizon", "4", "--copies", "2", "--batch-size", "2",
              "--speed-weight", str(SPEED_WEIGHT), "--val-every", "0"),
        evaluate_episodes=6, mpc_episodes=2,
        mpc=("--mpc-horizon", "4", "--mpc-futures", "2", "--mpc-iterations", "1", "--mpc-replan-every", "4"),
        gif_frames=5),
    "paper": DemoProfile(
        name="paper", description="the reference-scale recipe (the paper's sizes and steps): a GPU and hours",
        minutes=15.0,
        world_model=("--profile", "reference"),
        il=("--profile", "reference", "--batch-size", "64", "--steps", "20000"),
        mpc_il=("--profile", "reference", "--batch-size", "64", "--steps", "20000", "--planner-contexts", "20000",
                "--speed-weight", str(SPEED_WEIGHT), "--steering", "straight"),
        mpur=("--profile", "reference", "--speed-weight", str(SPEED_WEIGHT), "--steering", "straight"),
        evaluate_episodes=None, mpc_episodes=None,
        mpc=("--mpc-horizon", "30", "--mpc-futures", "10", "--mpc-iterations", "5", "--mpc-speed-weight",
             str(SPEED_WEIGHT))),
}

class StageFailed(RuntimeError):
    """A stage's command exited with an error (its own message was printed above)."""


STAGE_HELP = {
    "scene": "generate the I-80-like scene with SUMO (skipped when it exists)",
    "world-model": "train the kinematic-ego world model (the traffic step blind to the ego)",
    "il": "train the imitation baseline",
    "mpc-il": "amortised MPC: imitate the MPC planner's decisions on training contexts (MPUR's warm start)",
    "mpur": "train MPUR through the world model, uncertainty cost on, from the MPC-IL warm start",
    "evaluate": "the recording, no action, IL, MPC-IL and MPUR closed loop on the test split",
    "mpc": "MPC through the world model on the same (or evenly spaced) test episodes",
    "gif": "MPUR driving one test episode, the model's futures drawn",
    "report": "results table, figures, GIF, commands and configs in one folder",
}
STAGES = tuple(STAGE_HELP)


@dataclass
class Demo:
    """One demo recipe in a workspace: its run names, commands and finished stages.

    Args:
        workdir: the workspace (scenes, runs, reports).
        profile: how big each stage is.
        seed: seed of the scene, the models and the evaluation.
        threads: torch CPU threads for every stage (None: the commands' default).
        scene: an existing scene to use instead of generating one.
        run: a command-line runner ``argv -> exit code`` (default: :func:`ppuu.app.cli.main`).
    """

    workdir: Path
    profile: DemoProfile
    seed: int = 0
    threads: int | None = None
    scene: str | None = None
    run: Callable[[list[str]], int] | None = None
    log: Callable[[str], None] = print

    def __post_init__(self):
        self.workdir = Path(self.workdir)
        self.recipe = f"{self.profile.name}-s{self.seed}"
        self.state_dir = self.workdir / "demo" / self.recipe
        self.scene_name = self.scene or f"i80-sumo-{self.profile.minutes:g}min-s{self.seed}"
        self.runs = {stage: f"demo-{self.recipe}-{stage}" for stage in ("world-model", "il", "mpc-il", "mpur")}
        self.report_dir = self.workdir / "reports" / f"demo-{self.recipe}"
        if self.run is None:
            from ppuu.app.cli import main

            self.run = main

    # ----------------------------------------------------------------------------- bookkeeping
    @property
    def state_file(self) -> Path:
        return self.state_dir / "stages.json"

    def finished(self) -> dict:
        """stage -> {"seconds": wall time, "command": argv} of the stages done so far."""
        return FinishedSteps(self.state_file).load()

    def _mark(self, stage: str, seconds: float, command: list[str] | None) -> None:
        FinishedSteps(self.state_file).mark(stage, seconds, command)

    def _common(self) -> list[str]:
        flags = ["--workdir", str(self.workdir)]
        if self.threads is not None:
            flags += ["--threads", str(self.threads)]
        return flags

    # ----------------------------------------------------------------------------- the commands
    def command(self, stage: str) -> list[str] | None:
        """The ``ppuu`` argv of a stage (None for the report, which is written here)."""
        p, common, seed = self.profile, self._common(), ["--seed", str(self.seed)]
        scene = self.scene_name
        if stage == "scene":
            return ["data", "generate", "--site", "i80", "--minutes", f"{p.minutes:g}", "--name", scene, *seed,
                    *common]
        if stage == "world-model":
            return ["train", "world-model", "--scene", scene, "--ego-model", "kinematic", "--ego-conditioning",
                    "none", "--model", "deterministic", "--run", self.runs["world-model"], *p.world_model, *seed,
                    *common]
        if stage == "il":
            return ["train", "policy", "--scene", scene, "--world-model", self.runs["world-model"], "--method", "il",
                    "--run", self.runs["il"], *p.il, *seed, *common]
        if stage == "mpc-il":
            return ["train", "policy", "--scene", scene, "--world-model", self.runs["world-model"], "--method",
                    "mpc-il", "--run", self.runs["mpc-il"], *p.mpc_il, *seed, *common]
        if stage == "mpur":
            return ["train", "policy", "--scene", scene, "--world-model", self.runs["world-model"], "--method",
                    "mpur", "--init", self.runs["mpc-il"], "--run", self.runs["mpur"], *p.mpur, *seed, *common]
        episodes = lambda n: [] if n is None else ["--episodes", str(n)]  # noqa: E731
        if stage == "evaluate":
            return ["evaluate", "policy", scene, "--policy", self.runs["il"], self.runs["mpc-il"], self.runs["mpur"],
                    "--controllers", "human", "no_action", "--no-gifs", "--report", f"demo-{self.recipe}",
                    *episodes(p.evaluate_episodes), "--seeds", str(self.seed), *common]
        if stage == "mpc":
            return ["evaluate", "policy", scene, "--mpc", self.runs["world-model"], "--controllers", "--no-gifs",
                    "--report", f"demo-{self.recipe}-mpc", *p.mpc, *episodes(p.mpc_episodes), "--seeds",
                    str(self.seed), *common]
        if stage == "gif":
            return ["drive", scene, "--headless", "--mode", "policy", "--policy", self.runs["mpur"],
                    "--world-model", self.runs["world-model"], "--record", str(self.report_dir / "mpur-driving.gif"),
                    "--frames", str(p.gif_frames), *common]
        if stage == "report":
            return None
        raise ValueError(f"unknown stage {stage!r}; stages: {', '.join(STAGES)}")

    # ----------------------------------------------------------------------------- running
    def stages_to_run(self) -> list[str]:
        done = self.finished()
        todo = [s for s in STAGES if s not in done]
        if "scene" in todo and self._scene_exists():
            todo.remove("scene")
            self._mark("scene", 0.0, None)
            self.log(f"scene {self.scene_name}: already in {self.workdir / 'scenes'}, not generated again")
        return todo

    def _scene_exists(self) -> bool:
        from ppuu.data.scene import list_scenes

        return self.scene_name in list_scenes(self.workdir)

    def run_all(self) -> Path:
        """Run every stage not yet finished; returns the report folder."""
        if self.scene is not None and not self._scene_exists():
            raise FileNotFoundError(f"--scene {self.scene}: no such scene in {self.workdir / 'scenes'}")
        todo = self.stages_to_run()
        done = [s for s in STAGES if s not in todo]
        if done:
            self.log(f"demo {self.recipe}: resuming; finished stages: {', '.join(done)}")
        for index, stage in enumerate(todo, 1):
            argv = self.command(stage)
            shown = "ppuu " + " ".join(argv) if argv else "(written by the demo)"
            self.log(f"\n== stage {STAGES.index(stage) + 1}/{len(STAGES)}: {stage} ==\n{shown}")
            start = time.perf_counter()
            if argv is None:
                self.write_report()
            else:
                code = self.run(argv)
                if code:
                    raise StageFailed(f"stage {stage} failed (exit code {code}): ppuu {' '.join(argv)}")
            self._mark(stage, time.perf_counter() - start, argv)
        self.write_report()                         # refreshed every run: the walls of every stage
        return self.report_dir

    # ----------------------------------------------------------------------------- the report
    def results(self) -> dict:
        """controller -> its evaluation table, from the CSVs the evaluation stages wrote."""
        import pandas as pd

        from ppuu.app.cli_evaluate import _filename

        folder = self.workdir / "reports" / self.scene_name
        evaluate, mpc = f"demo-{self.recipe}", f"demo-{self.recipe}-mpc"      # the two stages' --report
        reports = {"human": evaluate, "no_action": evaluate, f"il ({self.runs['il']})": evaluate,
                   f"mpc-il ({self.runs['mpc-il']})": evaluate, f"mpur ({self.runs['mpur']})": evaluate,
                   "mpc-adam": mpc}
        tables = {}
        for name, report in reports.items():
            matches = sorted(folder.glob(f"{report}-{_filename(name)}-test-replay-*.csv"))
            if matches:
                tables[name] = pd.read_csv(matches[-1])
        return tables

    def write_report(self) -> Path:
        """The report folder: results table, figures, the GIF, the commands and the runs' configs."""
        from ppuu.planner.report import distance_histograms, outcome_bars, training_curves
        from ppuu.simulator.evaluate import markdown_summary

        out = self.report_dir
        out.mkdir(parents=True, exist_ok=True)
        tables = self.results()
        done = self.finished()
        lines = [f"# ppuu demo: {self.profile.name} profile, seed {self.seed}", "",
                 f"{self.profile.description}. Scene `{self.scene_name}`, test split, replay traffic.", ""]
        if tables:
            course = next(iter(tables.values()))["course"].iloc[0]
            lines += [f"## Results (course {course})", "", markdown_summary(tables), "",
                      *verdict(tables, f"mpur ({self.runs['mpur']})"), "",
                      "MPC drives the evenly spaced subset in its `episodes` column (its decisions cost more); "
                      "every other row drives every test episode." if self.profile.mpc_episodes else "", ""]
            outcome_bars(tables, out / "outcomes.png", f"outcomes ({course})")
            distance_histograms(tables, out / "distance.png", f"distance ({course})")
            lines += ["![outcomes](outcomes.png)", "", "![distance](distance.png)", ""]
        runs = {stage: self.workdir / "runs" / name for stage, name in self.runs.items()
                if (self.workdir / "runs" / name / "metrics.csv").is_file()}
        policy_runs = {k: v for k, v in runs.items() if k in ("il", "mpc-il", "mpur")}
        if policy_runs:
            training_curves(policy_runs, out / "training.png")
            lines += ["![training](training.png)", ""]
        decision = self.workdir / "reports" / self.scene_name / f"demo-{self.recipe}-mpc-test-replay-mpc-adam-decision.png"
        if decision.is_file():
            shutil.copyfile(decision, out / "mpc-decision.png")
            lines += ["## One MPC decision", "", "![one MPC decision](mpc-decision.png)", ""]
        if (out / "mpur-driving.gif").is_file():
            lines += ["## MPUR driving", "", "![MPUR driving](mpur-driving.gif)", ""]
        configs = out / "configs"
        configs.mkdir(exist_ok=True)
        for stage, folder in runs.items():
            if (folder / "config.json").is_file():
                shutil.copyfile(folder / "config.json", configs / f"{stage}.json")
        lines += ["## How it was made", "", "| stage | wall s | command |", "| --- | --- | --- |"]
        for stage in STAGES:
            if stage in done:
                argv = done[stage]["command"]
                shown = f"`ppuu {' '.join(argv)}`" if argv else "-"
                lines.append(f"| {stage} | {done[stage]['seconds']:.0f} | {shown} |")
        total = sum(d["seconds"] for d in done.values())
        lines += ["", f"Total {total / 60:.1f} min of stage wall time. The runs' configs are in `configs/`.", ""]
        tmp = out / "README.md.tmp"
        tmp.write_text("\n".join(lines))
        tmp.replace(out / "README.md")
        return out


def verdict(tables: dict, mpur: str) -> list[str]:
    """One line each for MPUR and MPC against no action on the same episodes (success %, points ahead).

    Args:
        tables: controller -> evaluation table (:meth:`Demo.results`).
        mpur: the MPUR row's name in ``tables``.
    """
    import numpy as np

    from ppuu.simulator.episodes import ARRIVED

    if "no_action" not in tables:
        return []
    baseline = tables["no_action"]
    lines = []
    for name, label in ((mpur, "MPUR"), ("mpc-adam", "MPC")):
        if name not in tables:
            continue
        table = tables[name]
        same = baseline[baseline["vehicle_id"].isin(table["vehicle_id"])]
        ours = 100 * float(np.mean(table["outcome"] == ARRIVED))
        theirs = 100 * float(np.mean(same["outcome"] == ARRIVED))
        word = "ahead of" if ours > theirs else "behind" if ours < theirs else "level with"
        lines.append(f"{label}: {ours:.1f} % success against no action's {theirs:.1f} % on the same "
                     f"{len(table)} episodes: {word} no action by {abs(ours - theirs):.1f} points.")
    return lines


def print_summary(demo: Demo, report: Path, stream=None) -> None:
    """The results table and where the report is (on ``stream``, default standard output)."""
    stream = stream or sys.stdout
    from ppuu.simulator.evaluate import markdown_summary

    tables = demo.results()
    if tables:
        print("\n" + markdown_summary(tables), file=stream)
        print("\n".join(["", *verdict(tables, f"mpur ({demo.runs['mpur']})")]), file=stream)
    done = demo.finished()
    walls = ", ".join(f"{stage} {done[stage]['seconds']:.0f} s" for stage in STAGES if stage in done)
    print(f"\nstages: {walls}\nreport: {report / 'README.md'}", file=stream)
