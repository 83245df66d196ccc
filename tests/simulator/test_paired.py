"""Paired comparison of two controllers on the same episodes (simulator/paired.py)."""

import math

import pandas as pd
import pytest

from ppuu.simulator.episodes import ARRIVED, COLLISION, OFFROAD
from ppuu.simulator.paired import (PairedResult, compare_pair, markdown_rows, mcnemar_exact_p, pooled,
                                   read_evaluation)


def table(outcomes, seed=0, first_vehicle=10, course="i80-reference", distance=1.0):
    return pd.DataFrame({"vehicle_id": range(first_vehicle, first_vehicle + len(outcomes)), "outcome": outcomes,
                         "seed": seed, "course": course, "distance": distance})


def test_mcnemar_exact_p_matches_the_binomial_tail():
    assert mcnemar_exact_p(0, 0) == 1.0
    assert mcnemar_exact_p(5, 0) == pytest.approx(2 / 32)                       # 2 * (1/2)^5
    assert mcnemar_exact_p(10, 2) == pytest.approx(2 * (1 + 12 + 66) / 4096)     # 2 P(X <= 2), X ~ B(12, 1/2)
    assert mcnemar_exact_p(2, 10) == mcnemar_exact_p(10, 2)                      # two-sided: symmetric
    assert mcnemar_exact_p(3, 3) == 1.0                                           # capped at 1
    assert mcnemar_exact_p(600, 500) < 0.01                                       # large counts stay finite
    with pytest.raises(ValueError):
        mcnemar_exact_p(-1, 2)


def test_compare_pair_counts_discordant_episodes_whatever_the_row_order():
    a = table([ARRIVED, ARRIVED, COLLISION, ARRIVED, OFFROAD])
    b = table([ARRIVED, COLLISION, ARRIVED, COLLISION, COLLISION]).iloc[::-1]    # same episodes, reversed
    result = compare_pair(a, b)
    assert (result.episodes, result.success_a, result.success_b, result.a_only, result.b_only) == (5, 3, 2, 2, 1)
    assert result.difference_pct == pytest.approx(20.0)
    assert result.p_value == pytest.approx(mcnemar_exact_p(2, 1))


def test_episodes_are_matched_by_seed_and_vehicle():
    """The same vehicle under two seeds is two episodes; swapping the seeds' outcomes is seen."""
    a = pd.concat([table([ARRIVED, COLLISION], seed=0), table([COLLISION, COLLISION], seed=1)])
    b = pd.concat([table([COLLISION, COLLISION], seed=1), table([COLLISION, ARRIVED], seed=0)])
    result = compare_pair(a, b)
    assert (result.episodes, result.a_only, result.b_only) == (4, 1, 1)


def test_compare_pair_refuses_different_episodes_or_courses():
    with pytest.raises(ValueError, match=r"mine.csv has 1 episodes that theirs.csv lacks.*vehicle 12"):
        compare_pair(table([ARRIVED] * 3), table([ARRIVED] * 2), "mine.csv", "theirs.csv")
    with pytest.raises(ValueError, match="course"):
        compare_pair(table([ARRIVED]), table([ARRIVED], course="full"))


def test_pooled_sums_counts_and_tests_all_discordant_episodes():
    first = PairedResult(100, 20, 10, 12, 2, distance_a=6000.0, distance_b=5000.0, a_further=60, b_further=30)
    second = PairedResult(50, 5, 5, 1, 1, distance_a=0.0, distance_b=2500.0, a_further=0, b_further=40)
    total = pooled([first, second])
    assert (total.episodes, total.success_a, total.success_b, total.a_only, total.b_only) == (150, 25, 15, 13, 3)
    assert total.p_value == pytest.approx(mcnemar_exact_p(13, 3))
    assert (total.mean_distance_a, total.mean_distance_b) == (40.0, 50.0)              # 6,000 m / 150, 7,500 m / 150
    assert (total.a_further, total.b_further) == (60, 70)
    assert total.distance_p_value == pytest.approx(mcnemar_exact_p(60, 70))
    rows = markdown_rows(["s0", "s1"], [first, second], "mpur", "vg")
    assert [row["pair"] for row in rows] == ["s0", "s1", "all pairs pooled"]
    assert rows[-1]["only mpur arrives"] == 13 and rows[-1]["mpur - vg (points)"] == "+6.67"
    assert rows[0]["mpur mean distance m"] == "60.0" and rows[0]["vg further"] == 30
    with pytest.raises(ValueError):
        pooled([])


def test_read_evaluation_names_the_file_row_and_field(tmp_path):
    good = tmp_path / "good.csv"
    table([ARRIVED, COLLISION]).to_csv(good, index=False)
    assert len(read_evaluation(good)) == 2

    bad_outcome = tmp_path / "bad_outcome.csv"
    frame = table([ARRIVED, COLLISION]).astype({"outcome": object})
    frame.loc[1, "outcome"] = 9
    frame.to_csv(bad_outcome, index=False)
    with pytest.raises(ValueError, match=r"bad_outcome.csv: row 3, field outcome: '9' is not an outcome code"):
        read_evaluation(bad_outcome)

    no_seed = tmp_path / "no_seed.csv"
    table([ARRIVED]).drop(columns="seed").to_csv(no_seed, index=False)
    with pytest.raises(ValueError, match=r"no_seed.csv: not an evaluation table: no column seed"):
        read_evaluation(no_seed)

    twice = tmp_path / "twice.csv"
    pd.concat([table([ARRIVED]), table([COLLISION])]).to_csv(twice, index=False)
    with pytest.raises(ValueError, match=r"twice.csv: row 3: episode \(seed 0, vehicle 10\) appears twice"):
        read_evaluation(twice)

    for value, name in (("far", "word"), (float("inf"), "infinite"), (float("-inf"), "minus-infinite"),
                        ("", "empty-field")):
        bad_distance = tmp_path / f"{name}.csv"
        frame = table([ARRIVED, COLLISION]).astype({"distance": object})
        frame.loc[1, "distance"] = value
        frame.to_csv(bad_distance, index=False)
        shown = "nan" if value == "" else value                                  # an empty field reads as NaN
        with pytest.raises(ValueError, match=rf"{name}.csv: row 3, field distance: '{shown}' is not a finite"):
            read_evaluation(bad_distance)
    behind = tmp_path / "behind.csv"                       # an ego that turned back ends behind its start
    table([COLLISION, COLLISION], distance=[-4.5, 3.0]).to_csv(behind, index=False)
    assert read_evaluation(behind)["distance"].tolist() == [-4.5, 3.0]

    with pytest.raises(FileNotFoundError, match="missing.csv"):
        read_evaluation(tmp_path / "missing.csv")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty.csv"):
        read_evaluation(empty)


def test_a_real_difference_is_significant_and_a_coin_flip_is_not():
    """40 episodes only A arrives in against 10: p well under 0.01; 25 against 25: p = 1."""
    a = table([ARRIVED] * 40 + [COLLISION] * 10 + [ARRIVED] * 5)
    b = table([COLLISION] * 40 + [ARRIVED] * 10 + [ARRIVED] * 5)
    assert compare_pair(a, b).p_value < 1e-4
    assert math.isclose(compare_pair(table([ARRIVED] * 25 + [COLLISION] * 25),
                                     table([COLLISION] * 25 + [ARRIVED] * 25)).p_value, 1.0)


def test_distances_are_compared_episode_by_episode_by_the_sign_test():
    """Where neither controller arrives, the one that drives further in most episodes stands out; ties count
    for neither, and episodes are matched by vehicle whatever the row order."""
    a = table([COLLISION] * 6, distance=[50.0, 60.0, 70.0, 80.0, 90.0, 5.0])
    b = table([COLLISION] * 6, distance=[10.0, 10.0, 10.0, 10.0, 90.0, 20.0]).iloc[::-1]
    result = compare_pair(a, b)
    assert (result.a_only, result.b_only, result.p_value) == (0, 0, 1.0)          # success cannot tell them apart
    assert (result.a_further, result.b_further) == (4, 1)                         # the 90 m tie counts for neither
    assert result.mean_distance_a == pytest.approx(355.0 / 6) and result.mean_distance_b == pytest.approx(150.0 / 6)
    assert result.distance_p_value == pytest.approx(mcnemar_exact_p(4, 1))
    many = compare_pair(table([COLLISION] * 30, distance=50.0), table([COLLISION] * 30, distance=10.0))
    assert many.distance_p_value < 1e-8 and many.p_value == 1.0


def test_episodes_both_arrive_in_do_not_count_in_the_distance_test():
    """Both arrive: their distances differ only by how far each overshot the arrival line in its last step."""
    a = table([ARRIVED, ARRIVED, COLLISION, ARRIVED], distance=[231.0, 230.5, 40.0, 231.0])
    b = table([ARRIVED, ARRIVED, COLLISION, COLLISION], distance=[230.2, 230.9, 20.0, 100.0])
    result = compare_pair(a, b)
    assert (result.a_further, result.b_further) == (2, 0)              # the collision and the one only A finishes
    assert result.mean_distance_a == pytest.approx(732.5 / 4)          # means still over every episode
