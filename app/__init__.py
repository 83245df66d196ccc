"""ppuu app package: the command line, the pygame views and the gymnasium environments.

Importing it (``import ppuu`` does) registers the gymnasium environments (``ppuu/Highway-v0``
and ``ppuu/HighwayReactive-v0``, see :mod:`ppuu.app.gym_env`), so that::

    import ppuu, gymnasium
    env = gymnasium.make("ppuu/Highway-v0", scene="i80-sumo-1min-s0")

or, without importing anything first (gymnasium imports the module named before the colon)::

    env = gymnasium.make("ppuu:ppuu/Highway-v0")

Registration lives here, not in :mod:`ppuu.app.gym_env`, so that it costs only the import of
gymnasium: the environments (torch, the simulator) load when one is made. The package
metadata also declares :func:`register_envs` under the ``gymnasium.envs`` entry-point group
(the plugin hook of gymnasium 0.26-0.29; gymnasium 1.x no longer reads it).
"""

from __future__ import annotations

ENV_IDS = {
    "ppuu/Highway-v0": {"traffic": "replay"},
    "ppuu/HighwayReactive-v0": {"traffic": "reactive"},
}
"""Registered environment ids and their default keyword arguments."""


def register_envs() -> None:
    """Register the ppuu environments with gymnasium (idempotent: ids already there are left alone).

    Each id gets an ``entry_point`` (:class:`ppuu.app.gym_env.HighwayEnv`, for ``gymnasium.make``)
    and a ``vector_entry_point`` (:class:`ppuu.app.gym_env.HighwayVectorEnv`, for
    ``gymnasium.make_vec(..., vectorization_mode="vector_entry_point")``, the default for
    these ids).
    """
    import gymnasium

    for env_id, kwargs in ENV_IDS.items():
        if env_id in gymnasium.registry:
            continue
        gymnasium.register(id=env_id, entry_point="ppuu.app.gym_env:HighwayEnv",
                           vector_entry_point="ppuu.app.gym_env:HighwayVectorEnv", kwargs=dict(kwargs))


register_envs()
