"""Paired comparison of two controllers driven on the same episodes.

Two evaluations of the same episodes (same scene, split, course and seed; ``ppuu evaluate`` writes
one CSV row per episode and seed) differ in success only through the *discordant* episodes: those
one controller arrives in and the other does not. If neither controller were better, each
discordant episode would go either way with probability 1/2, so the number that went to A is
Binomial(discordant, 1/2): McNemar's exact test. Its two-sided p-value says how often chance alone
would split the discordant episodes at least this unevenly.

Several pairs (seeds, scenes) pool by summing their discordant counts: the same conditional test
holds for the hypothesis "neither is better in any pair", and it uses every episode.

Where both controllers rarely arrive, success cannot tell them apart, but how far each drove before its
episode ended still can: the distances are compared the same way, by the sign test (the same binomial
test over the episodes in which A drove further and those in which B did). Episodes both arrive in are
left out of it (their distances differ only by how far each overshot the arrival line in its last
step), and so are ties. Like success, distance tells two *policies* apart: two training runs of one
recipe usually drive different distances too.

What it does not measure is the spread between training runs: two policies trained by the same
recipe can differ significantly on the same episodes (BENCHMARKS.md, issue 9). A small p-value says
that *these two controllers* arrive differently on *these episodes*, not that one recipe beats
another; that needs several training runs per recipe.
"""

from __future__ import annotations

import math
from dataclasses import astuple, dataclass
from fractions import Fraction
from pathlib import Path

import pandas as pd

from ppuu.simulator.episodes import ARRIVED, OUTCOMES

EPISODE_KEY = ("seed", "vehicle_id")
"""Columns that name an episode in an evaluation table (the replaced vehicle, and the seed it ran with)."""


def mcnemar_exact_p(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts (episodes only A arrives in, and
    only B): ``2 P(X <= min)`` for ``X ~ Binomial(a_only + b_only, 1/2)``, at most 1; 1 when there is
    no discordant episode. With the counts of episodes where A did better and where B did, it is the
    exact two-sided sign test."""
    if a_only < 0 or b_only < 0:
        raise ValueError(f"discordant counts must be >= 0, got {a_only}, {b_only}")
    n, k = a_only + b_only, min(a_only, b_only)
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(k + 1))
    return min(1.0, float(Fraction(2 * tail, 2 ** n)))      # exact: 2 ** n overflows a float past n = 1023


@dataclass(frozen=True)
class PairedResult:
    """Two controllers' success and distance on the same episodes.

    Attributes:
        episodes: episodes both drove (matched by seed and vehicle id).
        success_a, success_b: episodes each arrived in.
        a_only, b_only: episodes only A (only B) arrived in: the discordant pairs.
        distance_a, distance_b: each one's distance driven, summed over the episodes, m.
        a_further, b_further: episodes in which A (B) drove further than the other, among those that
            not both arrived in (ties in neither).
    """

    episodes: int
    success_a: int
    success_b: int
    a_only: int
    b_only: int
    distance_a: float
    distance_b: float
    a_further: int
    b_further: int

    @property
    def success_a_pct(self) -> float:
        return 100.0 * self.success_a / self.episodes if self.episodes else float("nan")

    @property
    def success_b_pct(self) -> float:
        return 100.0 * self.success_b / self.episodes if self.episodes else float("nan")

    @property
    def difference_pct(self) -> float:
        """A's success minus B's, percentage points."""
        return self.success_a_pct - self.success_b_pct

    @property
    def p_value(self) -> float:
        """Exact McNemar two-sided p-value (:func:`mcnemar_exact_p`)."""
        return mcnemar_exact_p(self.a_only, self.b_only)

    @property
    def mean_distance_a(self) -> float:
        """A's mean distance per episode, m."""
        return self.distance_a / self.episodes if self.episodes else float("nan")

    @property
    def mean_distance_b(self) -> float:
        """B's mean distance per episode, m."""
        return self.distance_b / self.episodes if self.episodes else float("nan")

    @property
    def distance_p_value(self) -> float:
        """Exact two-sided sign test of the distances: does one drive further more often than chance?"""
        return mcnemar_exact_p(self.a_further, self.b_further)

    def __add__(self, other: "PairedResult") -> "PairedResult":
        return PairedResult(*(mine + theirs for mine, theirs in zip(astuple(self), astuple(other))))


def read_evaluation(path: str | Path) -> pd.DataFrame:
    """An evaluation table as ``ppuu evaluate`` writes it (one row per episode and seed), checked:
    the episode key, ``outcome`` and ``distance`` columns present, outcome codes valid, distances
    finite (m along the course: negative for an ego that ended behind its start), no episode twice.

    Raises:
        FileNotFoundError: no such file.
        ValueError: naming the file (and the row, for a bad value) when the table is not one.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such evaluation table (ppuu evaluate writes them to "
                                "WORKDIR/reports/SCENE/*.csv)")
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not a CSV evaluation table ({error})") from None
    missing = [c for c in (*EPISODE_KEY, "outcome", "distance") if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: not an evaluation table: no column {', '.join(missing)} "
                         f"(columns: {', '.join(map(str, table.columns))})")
    checks = [(column, "int64", "an integer") for column in EPISODE_KEY] + [
        ("outcome", "int64", f"an outcome code 0-{len(OUTCOMES) - 1}"),
        ("distance", "float64", "a finite distance in metres")]
    for column, dtype, expected in checks:
        values = pd.to_numeric(table[column], errors="coerce")
        valid = values.abs() < math.inf                                  # NaN (unreadable) compares false
        if dtype == "int64":
            valid &= values == values.round()
        if column == "outcome":
            valid &= values.isin(range(len(OUTCOMES)))
        if not valid.all():
            row = int((~valid).to_numpy().nonzero()[0][0])
            raise ValueError(f"{path}: row {row + 2}, field {column}: '{table[column].iloc[row]}' is not {expected}")
        table[column] = values.astype(dtype)
    duplicated = table.duplicated(list(EPISODE_KEY))
    if duplicated.any():
        row = int(duplicated.to_numpy().nonzero()[0][0])
        raise ValueError(f"{path}: row {row + 2}: episode (seed {table['seed'].iloc[row]}, vehicle "
                         f"{table['vehicle_id'].iloc[row]}) appears twice")
    return table


def compare_pair(a: pd.DataFrame, b: pd.DataFrame, name_a: str = "A", name_b: str = "B") -> PairedResult:
    """Match two evaluation tables episode by episode: who arrives where, and who drives further.

    Args:
        a, b: evaluation tables (:func:`read_evaluation`) of the same episodes.
        name_a, name_b: how errors name them (e.g. their files).

    Raises:
        ValueError: the tables are on different courses, or their episodes differ (naming a few).
    """
    if "course" in a and "course" in b:
        courses_a, courses_b = set(a["course"].unique()), set(b["course"].unique())
        if courses_a != courses_b:
            raise ValueError(f"{name_a} is on course {sorted(courses_a)}, {name_b} on {sorted(courses_b)}: "
                             "results only compare on one course")
    key = list(EPISODE_KEY)
    columns = key + ["outcome", "distance"]
    joined = a[columns].merge(b[columns], on=key, how="outer", suffixes=("_a", "_b"), indicator=True)
    for side, name, other in (("left_only", name_a, name_b), ("right_only", name_b, name_a)):
        extra = joined[joined["_merge"] == side]
        if len(extra):
            shown = ", ".join(f"(seed {s}, vehicle {v})" for s, v in extra[key].head(3).itertuples(index=False))
            raise ValueError(f"{name} has {len(extra)} episodes that {other} lacks, e.g. {shown}: a paired "
                             "comparison needs the same episodes (scene, split, --episodes and --seeds)")
    arrived_a = joined["outcome_a"].to_numpy() == ARRIVED
    arrived_b = joined["outcome_b"].to_numpy() == ARRIVED
    distance_a, distance_b = joined["distance_a"].to_numpy(), joined["distance_b"].to_numpy()
    unfinished = ~(arrived_a & arrived_b)                  # both arrived: a difference of overshoot only
    return PairedResult(episodes=len(joined), success_a=int(arrived_a.sum()), success_b=int(arrived_b.sum()),
                        a_only=int((arrived_a & ~arrived_b).sum()), b_only=int((arrived_b & ~arrived_a).sum()),
                        distance_a=float(distance_a.sum()), distance_b=float(distance_b.sum()),
                        a_further=int((unfinished & (distance_a > distance_b)).sum()),
                        b_further=int((unfinished & (distance_b > distance_a)).sum()))


def pooled(results: list[PairedResult]) -> PairedResult:
    """Several pairs (seeds, scenes) as one: their episodes, successes, discordant counts, distances
    and further-counts summed."""
    if not results:
        raise ValueError("no pairs to pool")
    return sum(results[1:], start=results[0])


def markdown_rows(labels: list[str], results: list[PairedResult], name_a: str = "A",
                  name_b: str = "B") -> list[dict]:
    """One row per pair (label -> result) for a Markdown table, with the pooled row last when there
    are several pairs: episodes, each side's success %, the difference in points, the discordant
    counts and the exact McNemar p-value; then each side's mean distance (m), the episodes each drove
    further in and the sign test's p-value. The columns name the sides ``name_a`` and ``name_b``."""
    rows = list(zip(labels, results))
    if len(results) > 1:
        rows.append(("all pairs pooled", pooled(results)))
    return [{"pair": label, "episodes": r.episodes, f"{name_a} success %": f"{r.success_a_pct:.2f}",
             f"{name_b} success %": f"{r.success_b_pct:.2f}",
             f"{name_a} - {name_b} (points)": f"{r.difference_pct:+.2f}",
             f"only {name_a} arrives": r.a_only, f"only {name_b} arrives": r.b_only,
             "p (exact McNemar)": f"{r.p_value:.3g}",
             f"{name_a} mean distance m": f"{r.mean_distance_a:.1f}",
             f"{name_b} mean distance m": f"{r.mean_distance_b:.1f}",
             f"{name_a} further": r.a_further, f"{name_b} further": r.b_further,
             "p (sign test)": f"{r.distance_p_value:.3g}"}
            for label, r in rows]
