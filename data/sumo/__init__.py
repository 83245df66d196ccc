"""SUMO scene generator: dense NGSIM-like traffic without downloading NGSIM.

A road shaped like an NGSIM site (:mod:`data.sumo.network`, built with
netconvert), a demand of heterogeneous vehicles and drivers
(:mod:`data.sumo.demand`), a SUMO run writing floating-car data, and its
conversion into the canonical raw table (:mod:`data.sumo.fcd`), driven by
:func:`generate_traffic` (:mod:`data.sumo.generate`).

Needs the ``sumo`` and ``netconvert`` binaries: ``pip install eclipse-sumo``.
"""

from data.sumo.generate import generate_traffic
from data.sumo.tools import SumoError

__all__ = ["generate_traffic", "SumoError"]
