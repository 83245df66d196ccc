"""Tracked-vehicle data: readers, the SUMO scene generator, smoothing, splits.

Everything here speaks the canonical trajectory table of :mod:`ppuu.data.schema`
(SI units, world frame of DESIGN.md) and knows nothing of the simulator.
"""
