"""One episode replayed for people: a top-down GIF with the ego's cost terms written on it.

The results table says how often a method arrived; these animations show how: the best and
worst episodes of each method in ``ppuu evaluate policy``. The episode is driven again, alone,
by the same controller in a one-slot simulator (the simulator is deterministic, so a
deterministic controller drives it exactly as in the batch), and every step is drawn with the
gymnasium environments' :class:`~ppuu.app.render.TopDownRenderer`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ppuu.data.scene import Scene
from ppuu.simulator.episodes import OUTCOMES
from ppuu.simulator.evaluate import needs_grad
from ppuu.simulator.sim import BatchedSimulator, SimConfig


def record_episode(scene: Scene, config: SimConfig, controller, vehicle_id: int, path: str | Path,
                   max_steps: int = 600, fps: int = 10, every: int = 2, device: str | None = "cpu",
                   title: str = "") -> Path:
    """Drive one episode and write it as a GIF (every ``every``-th step, ``fps`` frames per second).

    Args:
        scene, config: the simulator's scene and settings (those the controller needs).
        controller: a closed-loop controller (:mod:`ppuu.simulator.evaluate`).
        vehicle_id: the recorded vehicle the ego replaces.
        path: the GIF to write (its folder is created).
        max_steps: stop after this many steps.

    Returns:
        the path written.
    """
    from PIL import Image

    from ppuu.app.render import TopDownRenderer

    sim = BatchedSimulator(scene, config, device=device)
    hook = sim.add_episode_start_hook(controller.on_episode_start) if hasattr(controller, "on_episode_start") else None
    x_min, y_min, x_max, y_max = sim.road.bounds
    renderer = TopDownRenderer(sim.road, pixels_per_metre=5.0, view_length_m=100.0,
                               view_width_m=(y_max - y_min) + 16.0)        # room for the text above the road
    frames = []
    try:
        observation = sim.reset([int(vehicle_id)])
        for step in range(max_steps):
            with torch.enable_grad() if needs_grad(controller) else torch.no_grad():
                action = controller(observation, sim)
            result = sim.step(action.detach())
            observation = result.observation
            if step % every == 0 or bool(result.done[0]):
                others = sim.others(torch.zeros(1, dtype=torch.int64, device=sim.device), sim.frame[:1])
                costs = result.costs
                text = (f"{title}  t {float(sim.steps[0]) * sim.dt:5.1f} s  v {float(sim.ego.speed[0]):4.1f} m/s  "
                        f"a {float(result.action[0, 0]):+4.1f} m/s2\n"
                        f"proximity {float(costs.proximity[0]):.2f}  lane {float(costs.lane[0]):.2f}  "
                        f"off-road {float(costs.offroad[0]):.2f}  {OUTCOMES[int(result.outcome[0])]}")
                frames.append(renderer.draw(sim.ego.position[0], sim.ego.heading[0], sim.size[0],
                                            others.centre[0], others.heading[0], others.size[0], others.mask[0],
                                            text=text))
            if bool(result.done[0]):
                frames.extend(frames[-1:] * fps)             # hold the end for a second
                break
    finally:
        if hook is not None:
            hook.remove()
        renderer.close()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images = [Image.fromarray(np.asarray(f)) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 * every / fps), loop=0)
    return path
