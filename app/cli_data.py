"""``ppuu data ...``: build, import, inspect and list the scenes of a workspace."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ppuu.data.scene import DEFAULT_WORKDIR, Scene, list_scenes, scene_path, scenes_dir


def add_workdir(parser: argparse.ArgumentParser) -> None:
    """The flags every command takes: ``--workdir`` and ``--threads``."""
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR,
                        help="workspace folder for scenes, caches and reports (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: the PPUU_THREADS environment variable, else half the "
                             "CPU cores: on a shared machine more threads than free cores is many times slower)")


def add_parser(groups) -> None:
    data = groups.add_parser("data", help="tracked-vehicle scenes: generate, import, info, list",
                             description="Build and inspect the traffic scenes everything else is made from.")
    sub = data.add_subparsers(dest="command", metavar="SUBCOMMAND", required=True)

    gen = sub.add_parser(
        "generate", help="generate a scene with SUMO on an NGSIM-shaped road (the embedded default)",
        description="Simulate dense highway traffic with SUMO on a road shaped like an NGSIM site, record "
                    "every vehicle at 10 Hz in the observed section, smooth it, flag bad trajectories and split "
                    "vehicles 80/10/10 into train/val/test. Same seed, same scene.")
    gen.add_argument("--site", default="i80", choices=["i80", "us101"],
                     help="road layout: i80 (6 lanes, HOV lane 1, on-ramp into lane 6, 503 m) or us101 "
                          "(5 lanes + auxiliary lane between an on- and an off-ramp, 640 m) (default: %(default)s)")
    gen.add_argument("--geometry", type=Path, metavar="ROAD.json",
                     help="a road of your own instead of --site: a geometry file (README, 'Road geometry') of "
                          "12 ft lanes and ramps beside them; the network is built from it")
    gen.add_argument("--minutes", type=float, default=15.0,
                     help="recorded duration in minutes of simulated time (default: %(default)s)")
    gen.add_argument("--seed", type=int, default=0, help="seed of SUMO, vehicle parameters and the split "
                                                         "(default: %(default)s)")
    gen.add_argument("--lane-wander", type=float, default=0.0, metavar="M",
                     help="drivers weave about the lane centre with this standard deviation of lateral "
                          "position, in m (human drivers: about 0.2), so that the recorded drivers steer "
                          "between lane changes; 0 keeps SUMO's exact lane centres (default: %(default)s)")
    gen.add_argument("--name", help="scene name in the workspace (default: SITE-sumo-MINUTESmin-sSEED, "
                                    "with -wanderM when --lane-wander is set)")
    gen.add_argument("--format", choices=["parquet", "ngsim"], default="parquet",
                     help="'ngsim' also writes the raw trajectories as an NGSIM 18-column file (feet, gzip) "
                          "beside the scene (default: %(default)s)")
    add_workdir(gen)
    gen.set_defaults(func=cmd_generate)

    imp = sub.add_parser(
        "import", help="read NGSIM trajectory files into a scene",
        description="Read NGSIM vehicle-trajectory files (raw 18-column text, plain or gzip; the combined CSV "
                    "export; the 24-column arterial files), convert to metres and the world frame, smooth, flag "
                    "bad trajectories and split by vehicle.")
    imp.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="NGSIM files; several are concatenated")
    imp.add_argument("--site", help="road layout: i80 or us101 (checked against the data), or any other name to "
                                    "infer the road from the data: main lanes, section length, and the extent of "
                                    "every ramp or auxiliary lane (default: from the CSV Location, else the file "
                                    "name)")
    imp.add_argument("--geometry", type=Path, metavar="ROAD.json",
                     help="state or correct the road: a geometry file (README, 'Road geometry'), e.g. the "
                          "road.json an earlier import wrote beside its scene, edited")
    imp.add_argument("--location", help="Location to select from a combined CSV export (e.g. i-80, us-101)")
    imp.add_argument("--name", help="scene name in the workspace (default: derived from site and file name)")
    imp.add_argument("--seed", type=int, default=0, help="seed of the train/val/test split (default: %(default)s)")
    add_workdir(imp)
    imp.set_defaults(func=cmd_import)

    info = sub.add_parser(
        "info", help="summary, per-lane traffic statistics and time-space diagrams of a scene",
        description="Print a scene's summary, its road (lanes, ramps) and per-lane flow (veh/h), density "
                    "(veh/km), speeds (m/s) and gaps (m, s); write the table, a time-space diagram per lane and a "
                    "plot of the drivable area with the vehicle positions on it (PNGs) to WORKDIR/reports/SCENE/.")
    info.add_argument("scene", nargs="?", help="scene name or folder (default: the most recently written scene)")
    add_workdir(info)
    info.set_defaults(func=cmd_info)

    lst = sub.add_parser("list", help="the scenes in the workspace", description="List the scenes in WORKDIR.")
    add_workdir(lst)
    lst.set_defaults(func=cmd_list)


def resolve_scene(workdir: Path, scene: str | None) -> Path:
    """A scene folder from a name, a path, or (None) the most recently written scene of the workspace."""
    if scene is not None:
        path = Path(scene)
        if (path / "scene.json").is_file():
            return path
        path = scene_path(workdir, scene)
        if (path / "scene.json").is_file():
            return path
        known = list_scenes(workdir)
        raise FileNotFoundError(f"no scene {scene!r} in {scenes_dir(workdir)}; scenes there: {known or 'none'}")
    names = list_scenes(workdir)
    if not names:
        raise FileNotFoundError(f"no scenes in {scenes_dir(workdir)}; create one with `ppuu data generate`")
    return max((scene_path(workdir, n) for n in names), key=lambda p: (p / "scene.json").stat().st_mtime)


def cmd_generate(args) -> int:
    from ppuu.data.pipeline import generate_sumo_scene

    from ppuu.data.geometry import read_geometry

    start = time.perf_counter()
    site = read_geometry(args.geometry) if args.geometry is not None else args.site
    scene = generate_sumo_scene(site=site, minutes=args.minutes, seed=args.seed, name=args.name,
                                lane_wander=args.lane_wander)
    path = scene.save(scene_path(args.workdir, scene.meta.name))
    print(f"wrote scene {scene.meta.name!r} to {path} ({len(scene.trajectories):,} rows, "
          f"{len(scene.vehicles):,} vehicles) in {time.perf_counter() - start:.1f} s")
    if args.format == "ngsim":
        print(f"wrote NGSIM file {export_ngsim(scene, path)}")
    return 0


def export_ngsim(scene: Scene, folder: Path) -> Path:
    """Write the scene's raw (unsmoothed) trajectories as an NGSIM raw 18-column gzip file in ``folder``."""
    from ppuu.data.ngsim import write_ngsim
    from ppuu.data.schema import RAW_COLUMNS

    raw = scene.trajectories[list(RAW_COLUMNS)].copy()
    raw["x"] = scene.trajectories["x_raw"]
    raw["y"] = scene.trajectories["y_raw"]
    return write_ngsim(raw, folder / f"{scene.meta.name}.ngsim.txt.gz", frame_rate=scene.meta.frame_rate)


def cmd_import(args) -> int:
    from ppuu.data.pipeline import import_ngsim_scene
    from ppuu.data.report import flag_counts

    start = time.perf_counter()
    scene = import_ngsim_scene(args.paths, site=args.site, name=args.name, location=args.location, seed=args.seed,
                               geometry=args.geometry)
    path = scene.save(scene_path(args.workdir, scene.meta.name))
    bad = int((~scene.vehicles["usable_as_ego"]).sum())
    problems = ", ".join(f"{name} {n}" for name, n in flag_counts(scene.vehicles).items())
    print(f"wrote scene {scene.meta.name!r} to {path} ({len(scene.trajectories):,} rows, "
          f"{len(scene.vehicles):,} vehicles, {bad} flagged as bad trajectories{': ' + problems if problems else ''}) "
          f"in {time.perf_counter() - start:.1f} s")
    print(f"road ({scene.meta.notes.get('geometry')}): {describe_road(scene.meta)}; "
          f"edit {path / 'road.json'} and import again with --geometry to correct it")
    warn_if_no_episodes(scene)
    return 0


def describe_road(meta) -> str:
    """One line: the main lanes, the section and every ramp of a scene's layout (metres)."""
    ramps = ", ".join(f"lane {r.lane} {r.kind} x={r.x_start:.0f}..{r.x_end:.0f} m" for r in meta.ramps)
    return (f"{meta.lane_count} main lanes of {meta.lane_widths[0]:.2f} m, section {meta.section_length:.0f} m"
            + (f", {ramps}" if ramps else ", no ramps"))


def warn_if_no_episodes(scene: Scene) -> int:
    """Number of episodes of the scene on its default course; says so loudly on stderr when there are none
    (a layout or course that does not fit the tracks)."""
    import sys

    from ppuu.simulator.episodes import CourseError, episode_vehicles, get_course

    course = get_course(None, scene.meta)
    try:
        n = len(episode_vehicles(scene, None, course))
        why = "no vehicle qualifies"
    except CourseError as exc:
        n, why = 0, str(exc)
    if n == 0:
        print(f"WARNING: scene {scene.meta.name!r} has 0 episodes on its default course {course}: {why}. "
              "Check the road against the data (`ppuu data info` plots both).", file=sys.stderr)
    return n


def cmd_info(args) -> int:
    from ppuu.data.report import lane_statistics, markdown_table, plot_road, plot_time_space, scene_summary

    folder = resolve_scene(args.workdir, args.scene)
    scene = Scene.load(folder)
    summary = scene_summary(scene)
    stats = lane_statistics(scene)
    out = Path(args.workdir) / "reports" / scene.meta.name
    out.mkdir(parents=True, exist_ok=True)

    print(f"scene {summary['name']} ({folder})")
    for key in ("site", "source", "rows", "vehicles", "duration_s", "lanes", "section_length_m", "mean_speed_mps",
                "vehicle_classes", "splits", "usable_as_ego", "flags"):
        value = summary[key]
        print(f"  {key:18s} {value:.2f}" if isinstance(value, float) else f"  {key:18s} {value}")
    table = markdown_table(stats)
    print("\nper lane: flow veh/h, density veh/km, speeds m/s, gaps m (bumper to bumper), headways s\n")
    print(table)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    (out / "lanes.md").write_text(table + "\n")
    stats.to_csv(out / "lanes.csv", index=False)
    png = plot_time_space(scene, out / "time_space.png")
    road_png = plot_road(scene, out / "road.png")
    print(f"\nroad ({scene.meta.notes.get('geometry', 'site')}): {describe_road(scene.meta)}")
    print(f"\nwrote {out / 'summary.json'}, {out / 'lanes.md'}, {out / 'lanes.csv'}, {png}, {road_png}")
    return 0


def cmd_list(args) -> int:
    names = list_scenes(args.workdir)
    if not names:
        print(f"no scenes in {scenes_dir(args.workdir)}; create one with `ppuu data generate`")
        return 0
    for name in names:
        meta = json.loads((scene_path(args.workdir, name) / "scene.json").read_text())
        print(f"{name:32s} site={meta['site']:8s} source={meta['source']:6s} lanes={len(meta['lane_widths'])}")
    return 0
