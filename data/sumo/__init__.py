"""SUMO scene generator: dense NGSIM-like traffic without downloading NGSIM.

A road shaped like an NGSIM site (:mod:`ppuu.data.sumo.network`, built with
netconvert), a demand of heterogeneous vehicles and drivers
(:mod:`ppuu.data.sumo.demand`), a SUMO run writing floating-car data, and its
conversion into the canonical raw table (:mod:`ppuu.data.sumo.fcd`), driven by
:func:`generate_traffic` (:mod:`ppuu.data.sumo.generate`).

Needs the ``sumo`` and ``netconvert`` binaries: ``pip install eclipse-sumo``.
"""

from ppuu.data.sumo.generate import generate_traffic
from ppuu.data.sumo.tools import SumoError

__all__ = ["generate_traffic", "SumoError"]
