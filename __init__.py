"""ppuu: prediction and policy learning under uncertainty.

The repository's top-level folders are the subpackages of this one namespace (the
install maps them, see ``setup.cfg``), so a user's own ``app.py`` or ``data/`` never
shadows them::

    ppuu.data          tracked-vehicle scenes: NGSIM readers, the SUMO generator, smoothing, splits
    ppuu.simulator     the batched simulator: replay and reactive traffic, rasteriser, costs, episodes
    ppuu.world_model   the stochastic forward model, its training and evaluation
    ppuu.planner       costs through the model, policy learning (MPUR and baselines), MPC
    ppuu.app           the ``ppuu`` command line, the pygame view, the gymnasium environments

Importing ``ppuu`` registers the gymnasium environments (it costs only the import of
gymnasium; torch and the simulator load when an environment is made)::

    import gymnasium, ppuu
    gymnasium.register_envs(ppuu)                    # optional: tells linters the import is used
    env = gymnasium.make("ppuu/Highway-v0", scene="i80-sumo-15min-s0")
    env = gymnasium.make("ppuu:ppuu/Highway-v0", ...)   # in a fresh interpreter, without the import
"""

from __future__ import annotations

__version__ = "0.1.0"

from ppuu.app import ENV_IDS, register_envs  # noqa: E402  (registers the environments)

__all__ = ["ENV_IDS", "register_envs", "__version__"]
