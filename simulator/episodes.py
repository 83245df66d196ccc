"""Courses, which recorded vehicles make episodes, and what an episode's outcome can be.

A **course** is the stretch of road an evaluation judges: a start line and an arrival line
along x (m). An episode replaces one recorded vehicle by the ego car where the vehicle's
recording first reaches the start line: the ego follows the recording for the context (20
frames, 2 s), then actions drive it until it reaches the arrival line (success), collides,
leaves the road or runs out of data. ``distance`` counts from the end of the context.

Results only compare on the same course, so every results table states its course. Named
courses (:data:`COURSES`):

* ``i80-reference``: the reference implementation's camera window on I-80 (SPEC §7):
  vehicles enter at 72 m and arrive at 323 m, so a recorded human drives about 210 m
  after its context. The default on site ``i80``: results compare with SPEC §7.
* ``full``: the whole recorded section, from each vehicle's first recorded frame to the
  section end minus 36 m (one observation half-length: beyond it the ego's view reaches
  past the recorded traffic). The default on every other site.

Explicit numbers are written ``"START:ARRIVAL"`` in metres (e.g. ``"72:323"``).

A vehicle makes an episode on a course when it is usable as ego (no quality flag, see
:mod:`ppuu.data.quality`), is in the requested split, its recording begins at or before the
start line (within :data:`START_TOLERANCE`) and reaches the arrival line, it has at least
the context plus one step from the start line on, and it has not arrived by the end of its
context: otherwise even a perfect driver could not drive the course (e.g. vehicles leaving
by an off-ramp, already mid-road when the recording starts, or still in the section when it
ends). A course must fit the data: :func:`episode_vehicles` raises :class:`CourseError`
when no vehicle of the scene drives the course (naming how far the tracks reach) and warns
when most vehicles that cross the start line stop short of the arrival line.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from ppuu.data.scene import Scene, SceneMeta

RUNNING, ARRIVED, COLLISION, OFFROAD, OUT_OF_DATA = range(5)
OUTCOMES = ("running", "arrived", "collision", "offroad", "out_of_data")
"""Outcome names, indexed by the codes above."""

ARRIVAL_MARGIN = 36.0
"""m before the section end where the ``full`` course arrives: one observation half-length."""

START_TOLERANCE = 5.0
"""m: a recording that begins this far past the start line still starts the course (trackers
pick a vehicle up a little after it crosses a line; about one car length)."""

FIT_WARNING_FRACTION = 0.5
"""Warn when fewer than this fraction of the vehicles crossing the start line reach the arrival line."""


class CourseError(ValueError):
    """The course does not fit the scene's tracks (or is malformed)."""


class CourseWarning(UserWarning):
    """The course fits the scene's tracks poorly: most vehicles stop short of the arrival line."""


@dataclass(frozen=True)
class Course:
    """A stretch of road episodes are judged on (see the module docstring).

    Attributes:
        name: how tables and reports name it.
        start_x: m, the start line; None = each vehicle's first recorded frame.
        arrival_x: m, the arrival line; None = the section end minus :data:`ARRIVAL_MARGIN`
            (resolved per scene by :meth:`resolve`).
        description: one line for help texts and reports.
    """

    name: str
    start_x: float | None = None
    arrival_x: float | None = None
    description: str = ""

    def __post_init__(self):
        for label, value in (("start_x", self.start_x), ("arrival_x", self.arrival_x)):
            if value is not None and not math.isfinite(value):
                raise CourseError(f"course {self.name!r}: {label} {value} is not a finite number of metres")
        if self.start_x is not None and self.arrival_x is not None and not self.start_x < self.arrival_x:
            raise CourseError(f"course {self.name!r}: start line {self.start_x} m is not before the arrival line "
                              f"{self.arrival_x} m")

    def resolve(self, meta: SceneMeta) -> "Course":
        """This course on a scene: the arrival line as a number of metres."""
        if self.arrival_x is not None:
            return self
        return Course(self.name, self.start_x, float(meta.section_length) - ARRIVAL_MARGIN, self.description)

    def __str__(self) -> str:
        start = "first frame" if self.start_x is None else f"{self.start_x:g} m"
        arrival = "section end - 36 m" if self.arrival_x is None else f"{self.arrival_x:g} m"
        return f"{self.name} ({start} -> {arrival})"

    def to_json(self) -> dict:
        return asdict(self)


COURSES: dict[str, Course] = {
    "i80-reference": Course("i80-reference", 72.0, 323.0,
                            "the reference's I-80 camera window: enter at 72 m, arrive at 323 m (SPEC §7)"),
    "full": Course("full", None, None,
                   "the whole section: from each vehicle's first recorded frame to the section end minus 36 m"),
}
"""Named courses."""

DEFAULT_COURSES: dict[str, str] = {"i80": "i80-reference"}
"""Default course per site; sites not listed default to ``full``."""

_NUMBERS = re.compile(r"^\s*([-+0-9.eE]+)\s*:\s*([-+0-9.eE]+)\s*$")


def get_course(course: Course | str | None, meta: SceneMeta) -> Course:
    """The course of an evaluation on a scene, resolved (its arrival line a number).

    Args:
        course: a :class:`Course`; a name of :data:`COURSES`; ``"START:ARRIVAL"`` in metres;
            or None for the scene site's default (:data:`DEFAULT_COURSES`, else ``full``).
        meta: the scene's metadata (site, section length).
    """
    if course is None:
        course = DEFAULT_COURSES.get(meta.site, "full")
    if isinstance(course, str):
        if course in COURSES:
            course = COURSES[course]
        elif match := _NUMBERS.match(course):
            try:
                start, arrival = float(match[1]), float(match[2])
            except ValueError:
                raise CourseError(f"course {course!r}: expected START:ARRIVAL in metres, e.g. '72:323'") from None
            course = Course(f"{start:g}-{arrival:g}m", start, arrival, f"explicit: enter at {start:g} m, "
                                                                        f"arrive at {arrival:g} m")
        else:
            raise CourseError(f"unknown course {course!r}; named courses: {sorted(COURSES)}, or START:ARRIVAL in "
                              "metres (e.g. '72:323')")
    if not isinstance(course, Course):
        raise CourseError(f"course {course!r}: expected a Course, a course name or 'START:ARRIVAL'")
    return course.resolve(meta)


def course_table(scene: Scene, course: Course | str | None = None, context_steps: int = 20) -> pd.DataFrame:
    """Every vehicle against a course: where it starts it and whether it makes an episode.

    Args:
        scene: the scene (trajectories sorted by vehicle and frame, frames consecutive).
        course: see :func:`get_course`.
        context_steps: frames the ego follows its recording before actions drive it.

    Returns:
        one row per vehicle, indexed by vehicle_id, with columns ``split``; ``x_first``,
        ``x_last`` (m, the recording's first and last centre x); ``start_frame`` (int64, the
        course's first frame for this vehicle, i.e. the episode's first context frame; -1
        where the recording does not cross the start line); ``crosses_start``, ``reaches_arrival``
        (bool); ``qualifies`` (bool: makes an episode, whatever its split).
    """
    course = get_course(course, scene.meta)
    t = scene.trajectories
    ids = t["vehicle_id"].to_numpy()
    frames = t["frame"].to_numpy()
    x = t["x"].to_numpy()
    vehicles, first_row = np.unique(ids, return_index=True)
    last_row = np.r_[first_row[1:] - 1, len(ids) - 1]
    x_first, x_last = x[first_row], x[last_row]
    if course.start_x is None:
        crosses = np.ones(len(vehicles), dtype=bool)
        start_row = first_row
    else:
        # first row at or past the start line, per vehicle (rows of a vehicle are consecutive)
        past = x >= course.start_x
        candidate = np.where(past, np.arange(len(x)), len(x))
        start_row = np.minimum.reduceat(candidate, first_row)
        crosses = (x_first <= course.start_x + START_TOLERANCE) & (start_row <= last_row)
        start_row = np.where(crosses, start_row, last_row)
    frames_from_start = last_row - start_row + 1
    long_enough = crosses & (frames_from_start > context_steps)
    context_row = np.where(long_enough, start_row + context_steps - 1, last_row)
    reaches = x_last >= course.arrival_x
    table = pd.DataFrame({
        "x_first": x_first, "x_last": x_last,
        "start_frame": np.where(crosses, frames[start_row], -1).astype(np.int64),
        "crosses_start": crosses, "reaches_arrival": reaches,
    }, index=pd.Index(vehicles, name="vehicle_id"))
    v = scene.vehicles.set_index("vehicle_id")
    table["split"] = v["split"].reindex(table.index)
    usable = v["usable_as_ego"].reindex(table.index).fillna(False).astype(bool).to_numpy()
    table["qualifies"] = usable & long_enough & reaches & (x[context_row] < course.arrival_x)
    return table


def check_course(scene: Scene, course: Course, table: pd.DataFrame) -> None:
    """Say when a course does not fit a scene's tracks.

    Raises:
        CourseError: no vehicle of the scene drives the course (any split).
    Warns:
        CourseWarning: fewer than :data:`FIT_WARNING_FRACTION` of the vehicles that cross the
            start line reach the arrival line.
    """
    crossing = table["crosses_start"]
    both = crossing & table["reaches_arrival"]
    reach = (f"its tracks run from x = {table['x_first'].min():.1f} m to at most {table['x_last'].max():.1f} m "
             f"(half of them end before {table['x_last'].median():.1f} m)")
    others = ", ".join(str(c.resolve(scene.meta)) for c in COURSES.values() if c.name != course.name)
    hint = f"pick a course inside the tracks: another named course ({others}) or START:ARRIVAL in metres"
    if not bool(table["qualifies"].any()):
        why = ("no vehicle crosses its start line" if not crossing.any() else
               "no vehicle that crosses its start line reaches its arrival line" if not both.any() else
               "no vehicle that drives it is usable as ego with a full context before the arrival line")
        raise CourseError(f"course {course} does not fit scene {scene.meta.name!r}: {why}; {reach}; {hint}")
    fraction = float(both.sum()) / max(int(crossing.sum()), 1)
    if fraction < FIT_WARNING_FRACTION:
        warnings.warn(f"course {course} fits scene {scene.meta.name!r} poorly: only {100 * fraction:.0f} % of the "
                      f"vehicles crossing its start line reach its arrival line; {reach}", CourseWarning,
                      stacklevel=3)


def episode_vehicles(scene: Scene, split: str | None, course: Course | str | None = None, context_steps: int = 20,
                     table: pd.DataFrame | None = None) -> np.ndarray:
    """Vehicle ids that make episodes on a course, sorted.

    Args:
        scene: the scene.
        split: "train", "val", "test", or None for every split.
        course: see :func:`get_course` (None: the site's default course).
        context_steps: frames the ego follows its recording before actions drive it.
        table: :func:`course_table` of the same scene, course and context, if already computed.

    Returns:
        (E,) int64 vehicle ids (possibly none for a split of a small scene).

    Raises:
        CourseError: the course does not fit the scene's tracks at all (see :func:`check_course`).
    """
    if split not in (None, "train", "val", "test"):
        raise ValueError(f"split {split!r}: expected 'train', 'val', 'test' or None")
    course = get_course(course, scene.meta)
    table = course_table(scene, course, context_steps) if table is None else table
    check_course(scene, course, table)
    ok = table["qualifies"].to_numpy()
    if split is not None:
        ok = ok & (table["split"] == split).to_numpy()
    return np.asarray(table.index[ok], dtype=np.int64)
