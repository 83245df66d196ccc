"""The paper's results table (SPEC §7) over several seeds: every method, trained and driven the same way.

    python scripts/paper_table.py --scene i80-sumo-15min-s0 --profile reference --seeds 0 1 2   # a GPU, days
    python scripts/paper_table.py --scene SCENE --profile cpu --seeds 0 1 2 --threads 1           # a CPU, hours
    python scripts/paper_table.py --scene SCENE --dry-run                                         # the commands

Per seed it trains a deterministic world model and a VAE warm-started from it (SPEC §5), then the
policies of SPEC §6 and §7 through them: ``il`` (imitation), ``mper`` (match the recorded future),
``vg`` (costs, deterministic model, no uncertainty cost), ``svg`` (costs, stochastic model, no
uncertainty cost) and ``mpur`` (costs and the uncertainty cost, stochastic model); and drives the
test split in closed loop with each policy, the recording (``human``), no action, and MPC through
the deterministic model (a row per ``--mpc-optimizer`` in ``--extra-evaluate-flags``). The table has one row per method: mean ± std over the seeds of success,
collisions, off-road, distance, speed, comfort and costs (``ppuu.simulator.evaluate.markdown_summary``).

Every step is one ``ppuu`` command. A step that finished is recorded in
``WORKDIR/paper/RECIPE/steps.json`` and skipped when the script runs again, and a training run
killed half-way resumes from its checkpoint, so the script can be stopped and restarted at any
time. The table and every command line go to ``WORKDIR/reports/paper-RECIPE/README.md``
(RECIPE = ``PROFILE-SCENE``).

``--profile`` is passed to every training command (``cpu``: minutes per run on 2 cores, far from the
paper's budget; ``reference``: SPEC §5-6 sizes and steps). ``--ego-model kinematic`` trains the
world models with the ego on its exact kinematics (Sobal et al. 2022) instead of the paper's
learned ego. ``--extra-policy-flags='--speed-weight 0.5'`` adds flags to every policy's training
(``--extra-il-flags`` to the imitation baseline's alone, after those; ``--extra-cost-flags`` to VG,
SVG and MPUR alone, e.g. ``'--steering learned --reached-fraction 0.5'``);
``--extra-world-model-flags`` and ``--extra-evaluate-flags`` likewise.

``--warm-start mpc-il`` adds amortised MPC (``mpc-il``: the policy fitted to the MPC planner's
decisions through the deterministic model, ``--extra-mpc-il-flags`` after the policy flags) as a
row and starts VG, SVG and MPUR from it (``--init``), the recipe ``ppuu demo`` uses; the runs and the
report are named ``...-from-mpc-il``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path
from typing import Callable

from ppuu.app.steps import FinishedSteps

#: Policy methods (SPEC §6-7) and the world model each trains through.
METHODS = {"il": "det", "mper": "det", "vg": "det", "svg": "vae", "mpur": "vae"}
#: The methods that minimise costs through the model: ``--extra-cost-flags`` go to them; with
#: ``warm_start="mpc-il"`` amortised MPC is trained as well and they start from it.
WARM_STARTED = ("vg", "svg", "mpur")


class Recipe:
    """The commands of the table for one scene and profile, and which of them have finished.

    Args:
        workdir: the workspace (scenes, runs, reports).
        scene: scene name in the workspace.
        profile: ``cpu`` or ``reference`` (passed to every training command).
        seeds: the seeds (each trains its own models).
        ego_model: ``learned`` (the paper) or ``kinematic`` (Sobal et al. 2022).
        threads: torch CPU threads for every command (None: the commands' default).
        extra_policy_flags: extra argv for every ``ppuu train policy``.
        extra_il_flags: extra argv for the imitation baseline's only, after ``extra_policy_flags`` (the later
            of two equal flags wins: e.g. a larger batch for imitation, whose steps are cheap).
        extra_world_model_flags: extra argv for every ``ppuu train world-model``.
        extra_evaluate_flags: extra argv for every ``ppuu evaluate policy`` (e.g. MPC settings, ``--episodes``).
        mpc: drive with MPC too.
        warm_start: None, or "mpc-il": train amortised MPC too and start VG, SVG and MPUR from it.
        extra_mpc_il_flags: extra argv for ``mpc-il`` only, after ``extra_policy_flags``.
        extra_cost_flags: extra argv for VG, SVG and MPUR only (:data:`WARM_STARTED`), after ``extra_policy_flags``.
        run: ``argv -> exit code`` (default: :func:`ppuu.app.cli.main`).
    """

    def __init__(self, workdir: Path, scene: str, profile: str = "cpu", seeds: tuple[int, ...] = (0, 1, 2),
                 ego_model: str = "learned", threads: int | None = None, extra_policy_flags: tuple[str, ...] = (),
                 extra_world_model_flags: tuple[str, ...] = (), extra_evaluate_flags: tuple[str, ...] = (),
                 mpc: bool = True, run: Callable[[list[str]], int] | None = None, log: Callable[[str], None] = print,
                 extra_il_flags: tuple[str, ...] = (), warm_start: str | None = None,
                 extra_mpc_il_flags: tuple[str, ...] = (), extra_cost_flags: tuple[str, ...] = ()):
        if profile not in ("cpu", "reference"):
            raise ValueError(f"profile {profile!r}: expected 'cpu' or 'reference'")
        if ego_model not in ("learned", "kinematic"):
            raise ValueError(f"ego_model {ego_model!r}: expected 'learned' or 'kinematic'")
        if not seeds:
            raise ValueError("at least one seed")
        if warm_start not in (None, "mpc-il"):
            raise ValueError(f"warm_start {warm_start!r}: expected None or 'mpc-il'")
        self.warm_start = warm_start
        self.methods: dict[str, str] = {}             # METHODS, with mpc-il (deterministic model) before VG
        for method, model in METHODS.items():
            if warm_start and method == WARM_STARTED[0]:
                self.methods[warm_start] = "det"
            self.methods[method] = model
        self.workdir, self.scene, self.profile, self.seeds = Path(workdir), scene, profile, tuple(seeds)
        self.ego_model, self.threads, self.mpc = ego_model, threads, mpc
        self.extra = {"policy": tuple(extra_policy_flags), "world-model": tuple(extra_world_model_flags),
                      "evaluate": tuple(extra_evaluate_flags), "il": tuple(extra_il_flags),
                      "mpc-il": tuple(extra_mpc_il_flags), "cost": tuple(extra_cost_flags)}
        self.name = f"{profile}-{ego_model}-{scene}" + ("" if warm_start is None else f"-from-{warm_start}")
        self.state_file = self.workdir / "paper" / self.name / "steps.json"
        self.report_dir = self.workdir / "reports" / f"paper-{self.name}"
        self.log = log
        if run is None:
            from ppuu.app.cli import main as run
        self.run = run

    # ----------------------------------------------------------------------------- names and commands
    def run_name(self, what: str, seed: int) -> str:
        """Run folder name of a world model (``det``, ``vae``) or a policy method, for one seed."""
        return f"paper-{self.name}-{what}-s{seed}"

    def _common(self, seed: int) -> list[str]:
        flags = ["--seed", str(seed), "--workdir", str(self.workdir)]
        return flags + (["--threads", str(self.threads)] if self.threads is not None else [])

    def steps(self) -> list[tuple[str, list[str]]]:
        """(step name, ppuu argv) in the order they must run."""
        out = []
        ego = ["--ego-model", self.ego_model] + (["--ego-conditioning", "none"] if self.ego_model == "kinematic" else [])
        for seed in self.seeds:
            det, vae = self.run_name("det", seed), self.run_name("vae", seed)
            out.append((f"world-model det s{seed}", ["train", "world-model", "--scene", self.scene, "--model",
                                                     "deterministic", "--profile", self.profile, *ego, "--run", det,
                                                     *self.extra["world-model"], *self._common(seed)]))
            init = str(self.workdir / "runs" / det / "checkpoint.pt")
            out.append((f"world-model vae s{seed}", ["train", "world-model", "--scene", self.scene, "--model", "vae",
                                                     "--profile", self.profile, *ego, "--init", init, "--run", vae,
                                                     *self.extra["world-model"], *self._common(seed)]))
            for method, model in self.methods.items():
                init = ["--init", self.run_name(self.warm_start, seed)] \
                    if self.warm_start and method in WARM_STARTED else []
                out.append((f"{method} s{seed}", ["train", "policy", "--scene", self.scene, "--world-model",
                                                  self.run_name(model, seed), "--method", method, "--profile",
                                                  self.profile, "--run", self.run_name(method, seed), *init,
                                                  *self.extra["policy"], *self.extra.get(method, ()),
                                                  *(self.extra["cost"] if method in WARM_STARTED else ()),
                                                  *self._common(seed)]))
            policies = [self.run_name(m, seed) for m in self.methods]
            mpc = ["--mpc", det] if self.mpc else []
            out.append((f"evaluate s{seed}", ["evaluate", "policy", self.scene, "--policy", *policies, *mpc,
                                              "--controllers", "human", "no_action", "--no-gifs", "--report",
                                              f"paper-{self.name}-s{seed}", *self.extra["evaluate"], "--seeds",
                                              str(seed), "--workdir",
                                              str(self.workdir),
                                              *(["--threads", str(self.threads)] if self.threads is not None else [])]))
        return out

    # ----------------------------------------------------------------------------- running
    def finished(self) -> dict:
        """step name -> {"seconds", "command"} of the steps done so far."""
        return FinishedSteps(self.state_file).load()

    def _mark(self, step: str, seconds: float, argv: list[str]) -> None:
        FinishedSteps(self.state_file).mark(step, seconds, argv)

    def run_all(self) -> Path:
        """Every step not yet finished, then the table; returns the report folder.

        Raises:
            RuntimeError: a step's command failed (its own message was printed above it).
        """
        steps = self.steps()
        done = self.finished()
        for index, (step, argv) in enumerate(steps, 1):
            if step in done:
                if _without_threads(done[step]["command"]) != _without_threads(argv):
                    raise RuntimeError(f"step {step} finished with another command (ppuu "
                                       f"{shlex.join(done[step]['command'])}); use another --workdir, or delete "
                                       f"{self.state_file} to run every step again")
                continue
            self.log(f"\n== step {index}/{len(steps)}: {step} ==\nppuu {shlex.join(argv)}")
            start, started = time.perf_counter(), time.time() - 1
            code = self.run(argv)
            if code:
                raise RuntimeError(f"step {step} failed (exit code {code}): ppuu {shlex.join(argv)}")
            if step.startswith("evaluate"):
                self._keep_evaluations(int(step.rsplit(" s", 1)[1]), since=started)
            self._mark(step, time.perf_counter() - start, argv)
        return self.write_report()

    # ----------------------------------------------------------------------------- the table
    def _mpc_rows(self) -> list[str]:
        """The MPC controllers' names (``mpc-OPTIMIZER``, as ``--mpc-optimizer`` asks; Adam by default)."""
        if not self.mpc:
            return []
        flags = list(self.extra["evaluate"])
        if "--mpc-optimizer" not in flags:
            return ["mpc-adam"]
        rest = flags[flags.index("--mpc-optimizer") + 1:]
        end = next((i for i, flag in enumerate(rest) if flag.startswith("--")), len(rest))
        return [f"mpc-{name}" for name in rest[:end]]

    def _controllers(self, seed: int) -> dict[str, str]:
        """Controller name in the evaluation files -> the table's row (policies are named by their method,
        so each row pools its seeds)."""
        names = {"human": "human", "no_action": "no_action"}
        names.update({f"{m} ({self.run_name(m, seed)})": m for m in self.methods})
        names.update({name: name for name in self._mpc_rows()})
        return names

    def _keep_evaluations(self, seed: int, since: float) -> None:
        """Copy one seed's evaluation tables, written since ``since`` (a time.time()), out of the scene's
        report folder, where the next seed's evaluation would overwrite those named by controller only
        (human, no action, MPC).

        Raises:
            RuntimeError: a controller's table was not written by this evaluation.
        """
        import shutil

        from ppuu.app.cli_evaluate import _filename

        source = self.workdir / "reports" / self.scene
        target = self.state_file.parent / "evaluations" / f"s{seed}"
        target.mkdir(parents=True, exist_ok=True)
        for controller, row in self._controllers(seed).items():
            fresh = [p for p in source.glob(f"*-{_filename(controller)}-*.csv") if p.stat().st_mtime >= since]
            if not fresh:
                raise RuntimeError(f"evaluate s{seed} wrote no table for {controller} in {source}")
            shutil.copyfile(max(fresh, key=lambda p: p.stat().st_mtime), target / f"{row}.csv")

    def tables(self) -> dict:
        """Row name -> evaluation table over every seed evaluated so far (a ``seed`` column)."""
        import pandas as pd

        rows: dict[str, list] = {}
        for seed in self.seeds:
            folder = self.state_file.parent / "evaluations" / f"s{seed}"
            for row in set(self._controllers(seed).values()):
                if (folder / f"{row}.csv").is_file():
                    rows.setdefault(row, []).append(pd.read_csv(folder / f"{row}.csv"))
        return {row: pd.concat(parts, ignore_index=True) for row, parts in rows.items()}

    def write_report(self) -> Path:
        """``README.md`` in the report folder: the table (mean ± std over seeds) and every command."""
        from ppuu.simulator.evaluate import markdown_summary

        tables = self.tables()
        done = self.finished()
        order = ["human", "no_action", *self.methods, *self._mpc_rows()]
        lines = [f"# The paper's table: {self.profile} profile, {self.ego_model} ego, scene `{self.scene}`", "",
                 f"Seeds {', '.join(map(str, self.seeds))}; the split, traffic and course of the evaluation "
                 "commands below (default: test split, replay traffic, the site's course); mean ± std over the "
                 "seeds (`scripts/paper_table.py`).", ""]
        if tables:
            lines += [markdown_summary({k: tables[k] for k in order if k in tables}), ""]
        lines += ["## Commands", "", "| step | wall s | command |", "| --- | --- | --- |"]
        for step, argv in self.steps():
            wall = f"{done[step]['seconds']:.0f}" if step in done else "not run"
            lines.append(f"| {step} | {wall} | `ppuu {shlex.join(argv)}` |")
        self.report_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.report_dir / "README.md.tmp"
        tmp.write_text("\n".join(lines) + "\n")
        tmp.replace(self.report_dir / "README.md")
        return self.report_dir


def _without_threads(argv: list[str]) -> list[str]:
    """A command without its ``--threads N`` (a resumed step may run on another machine)."""
    out, skip = [], False
    for flag in argv:
        if skip:
            skip = False
        elif flag == "--threads":
            skip = True
        else:
            out.append(flag)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scene", required=True, help="scene name in the workspace (e.g. i80-sumo-15min-s0)")
    parser.add_argument("--workdir", default="ppuu-work", help="workspace folder (default: %(default)s)")
    parser.add_argument("--profile", default="cpu", choices=["cpu", "reference"],
                        help="sizes and steps of every training run (default: %(default)s)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="default: %(default)s")
    parser.add_argument("--ego-model", default="learned", choices=["learned", "kinematic"],
                        help="the world models' ego: the paper's learned one or exact kinematics (default: %(default)s)")
    only = "only, after --extra-policy-flags (the later flag wins)"
    for what, used, example in (
            ("policy", "every `ppuu train policy`", "--speed-weight 0.5"),
            ("world-model", "every `ppuu train world-model`", "--steps 1000"),
            ("evaluate", "every `ppuu evaluate policy`", "--mpc-futures 2 --episodes 40"),
            ("il", f"the imitation baseline {only}", "--batch-size 64 --steps 300"),
            ("mpc-il", f"the mpc-il policy {only}", "--planner-contexts 800"),
            ("cost", f"VG, SVG and MPUR (the methods that minimise costs through the model) {only}",
             "--steering learned --reached-fraction 0.5")):
        parser.add_argument(f"--extra-{what}-flags", default="", metavar="FLAGS",
                            help=f"extra flags for {used}, one string given with '=' "
                                 f"(e.g. --extra-{what}-flags='{example}')")
    parser.add_argument("--warm-start", choices=["mpc-il"], default=None,
                        help="train amortised MPC (mpc-il) too and start VG, SVG and MPUR from it (ppuu demo's recipe)")
    parser.add_argument("--no-mpc", action="store_true", help="leave MPC out (it is the slowest controller on a CPU)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads for every command")
    parser.add_argument("--dry-run", action="store_true", help="print the commands and exit")
    args = parser.parse_args(argv)

    recipe = Recipe(Path(args.workdir), args.scene, args.profile, tuple(args.seeds), args.ego_model, args.threads,
                    tuple(shlex.split(args.extra_policy_flags)), tuple(shlex.split(args.extra_world_model_flags)),
                    tuple(shlex.split(args.extra_evaluate_flags)), mpc=not args.no_mpc,
                    extra_il_flags=tuple(shlex.split(args.extra_il_flags)), warm_start=args.warm_start,
                    extra_mpc_il_flags=tuple(shlex.split(args.extra_mpc_il_flags)),
                    extra_cost_flags=tuple(shlex.split(args.extra_cost_flags)))
    if args.dry_run:
        for step, command in recipe.steps():
            print(f"# {step}\nppuu {shlex.join(command)}")
        return 0
    try:
        report = recipe.run_all()
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print((report / "README.md").read_text())
    print(f"report: {report / 'README.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
