"""TrafficLog.near: the vehicles near a batch of points, from the packed x-sorted table."""

from __future__ import annotations

import numpy as np
import torch

from ppuu.simulator.traffic import TrafficLog


def test_near_finds_exactly_the_vehicles_within_reach(small_scene):
    log = TrafficLog(small_scene)
    rng = np.random.default_rng(0)
    B, reach = 64, 30.0
    frames = torch.as_tensor(rng.integers(log.first_frame - 5, log.last_frame + 5, B))   # a few outside
    x = torch.as_tensor(rng.uniform(-20.0, 520.0, B), dtype=torch.float32)
    packed, vehicle_id, mask = log.near(frames, x, reach)
    everyone = log.at(frames)
    within = everyone.mask & ((everyone.centre[..., 0] - x[:, None]).abs() < reach)
    assert packed.shape == (B, log.near_width(reach), 6) and int(mask.sum(1).max()) <= log.near_width(reach)
    assert int(within.sum()) > 0
    outside = (frames < log.first_frame) | (frames > log.last_frame)
    assert bool(outside.any()) and not bool(mask[outside].any())        # no vehicle outside the recording
    for b in range(B):        # a test: the brute-force reference, slot by slot
        expected = sorted(everyone.vehicle_id[b][within[b]].tolist())
        found = vehicle_id[b][mask[b]].tolist()
        # the interval's ends are inclusive / exclusive: nothing strictly inside may be missed
        assert set(expected) <= set(found), b
        assert all(abs(float(c) - float(x[b])) <= reach for c in packed[b, :, 0][mask[b]]), b
        rows = everyone.rows[b][everyone.mask[b]]
        by_id = dict(zip(everyone.vehicle_id[b][everyone.mask[b]].tolist(), rows.tolist()))
        for row, vid in zip(packed[b][mask[b]], found):
            r = by_id[vid]
            assert torch.equal(row[:2], log.centre[r]) and torch.equal(row[4:], log.size[r])
            assert torch.equal(row[2:4], torch.stack([torch.cos(log.heading[r]), torch.sin(log.heading[r])]))


def test_near_width_bounds_every_window(small_scene):
    log = TrafficLog(small_scene)
    for reach in (5.0, 45.0):
        width = log.near_width(reach)
        frame = torch.arange(log.first_frame, log.last_frame + 1)
        counts = []
        for x in np.arange(-50.0, 560.0, 7.0):
            _, _, mask = log.near(frame, torch.full((len(frame),), x), reach)
            counts.append(int(mask.sum(1).max()))
        assert max(counts) <= width
        assert max(counts) >= width // 2          # the bound is not loose by much
