"""What defines a policy-training run: the methods, the presets and :class:`PolicyTrainConfig`.

The configuration is saved with every policy run (``config.json`` and the checkpoint) and checked on
resume; :mod:`ppuu.planner.train` runs it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ppuu.planner.imagination import WINDOW_ORIGINS
from ppuu.planner.objective import CostWeights
from ppuu.planner.policy import PolicyConfig

METHODS = ("mpur", "vg", "svg", "mper", "il", "mpc-il")
ONE_STEP_METHODS = ("il", "mpc-il")
"""The methods that only regress the first action on real contexts (no imagined rollout)."""
COST_METHODS = ("mpur", "vg", "svg")
"""The methods that minimise predicted costs (and so can imagine from contexts without a recorded future)."""
ROAD_COSTS = ("predicted", "context")
"""Where a learned-ego model's lane and off-road costs are read (:class:`PolicyTrainConfig`)."""
SPEED_REFERENCES = ("context", "recorded", "lower")
"""What the speed deficit is charged against (:class:`PolicyTrainConfig`)."""

PROFILES: dict[str, dict[str, Any]] = {
    # Trains in minutes on 2 CPU cores: a narrow policy, 6 contexts, 15 imagined steps, 4 copies.
    "cpu": dict(batch_size=6, horizon=15, copies=4, steps=300, lr=1e-3, val_every=100, val_windows=24,
                checkpoint_every=50, policy=dict(hidden_channels=(16, 32, 64), hidden_mlp=64)),
    # SPEC §6: batch 6, 30 steps, 10 dropout copies, Adam 1e-4, clip 50, 100 k steps (a GPU).
    "reference": dict(batch_size=6, horizon=30, copies=10, steps=100_000, lr=1e-4, val_every=2000, val_windows=240,
                      checkpoint_every=2000, policy=dict()),
}


@dataclass
class PolicyTrainConfig:
    """Everything that defines a policy-training run (saved as ``config.json``).

    Attributes:
        method: one of :data:`METHODS`.
        profile: "cpu" or "reference": the preset the other fields started from.
        world_model: path of the world-model checkpoint imagined with (frozen).
        steps, batch_size, lr, grad_clip, seed: as usual (batch_size: contexts per step).
        warmup_steps: the learning rate rises linearly from ``lr / warmup_steps`` to ``lr`` over this many
            first steps (0 = none). Fine-tuning a warm start: Adam's first steps move every weight by
            about ``lr`` whatever its gradient, which can undo a converged policy before it improves it.
        anchor_weight: weight of the trust region around the warm start (``--init``; imagining methods
            only): the mean squared distance, in normalised units, between the policy's first action and
            the warm start's on the same real context. 0 = off.
        reached_fraction: share of every batch's contexts taken from the policy's own closed-loop episodes
            (mpur, vg, svg; 0 = recorded contexts only; :mod:`ppuu.planner.reached`).
        reached_every, reached_episodes, reached_steps, reached_stride: a new pool of reached contexts every
            ``reached_every`` steps, from ``reached_episodes`` training episodes driven up to ``reached_steps``
            steps with a context kept every ``reached_stride`` steps.
        horizon: imagined steps per context.
        copies: K, dropout copies for the uncertainty cost (mpur only; others use 1).
        planner_contexts, planner_iterations, planner_lr, planner_futures: ``mpc-il``'s planner: training
            contexts planned for, Adam iterations and learning rate per plan, imagined futures per plan
            (the plan's horizon is ``horizon``; its cost weights are ``weights``).
        weights: the :class:`~ppuu.planner.objective.CostWeights`.
        road_costs: where a learned-ego (egocentric) model's lane and off-road costs are read:
            "predicted" (its own predicted frames, as Henaff 2019) or "context" (the last real context
            frame at the predicted pose, :class:`~ppuu.planner.costs.ContextRoadCosts`). The caller
            builds the cost model from it (``ppuu.app.cli_policy.cost_model_for``).
        speed_reference: what the speed-keeping term (``weights.speed``) charges the deficit against:
            "context" (the speed at the end of the context, :mod:`ppuu.planner.objective`) or "recorded"
            (the recorded driver's speed at each imagined step, so slowing down where the driver slowed
            down is free; contexts without a recorded future, reached ones, use "context") or "lower" (the
            lower of the two at each step: free to slow where the driver slowed, never asked to go faster
            than at the end of the context).
        window_origin: where the policy's imagined window states measure x from, on egocentric
            (learned-ego) models: "newest" (its newest frame, as the simulator's controller gives them) or
            "context" (the real context's last frame: how runs before 2026-12-07 trained, and a
            ``config.json`` without this field reads as that). Fixed-frame models always use "context"
            (their controller measures from the anchor, as imagination does).
            :func:`~ppuu.planner.imagination.policy_actor`.
        stats_batches: batches of expert rollouts measured for the uncertainty statistics.
        device, amp: as the world model's training.
        val_every, val_windows, checkpoint_every, log_every, max_bad_steps, prefetch: bookkeeping.
        policy: the :class:`~ppuu.planner.policy.PolicyConfig` (image size and context set from the model).
    """

    method: str = "mpur"
    profile: str = "cpu"
    world_model: str = ""
    steps: int = 300
    batch_size: int = 6
    horizon: int = 15
    copies: int = 4
    planner_contexts: int = 1600
    planner_iterations: int = 10
    planner_lr: float = 0.1
    planner_futures: int = 2
    lr: float = 1e-3
    warmup_steps: int = 0
    anchor_weight: float = 0.0
    reached_fraction: float = 0.0
    reached_every: int = 10
    reached_episodes: int = 32
    reached_steps: int = 80
    reached_stride: int = 10
    grad_clip: float = 50.0
    seed: int = 0
    weights: CostWeights = field(default_factory=CostWeights)
    road_costs: str = "predicted"
    speed_reference: str = "context"
    window_origin: str = "newest"
    stats_batches: int = 8
    device: str | None = None
    amp: bool | None = None
    val_every: int = 100
    val_windows: int = 24
    checkpoint_every: int = 50
    log_every: int = 10
    max_bad_steps: int = 20
    prefetch: int = 2
    policy: PolicyConfig = field(default_factory=PolicyConfig)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method {self.method!r}: expected one of {METHODS}")
        for name in ("steps", "batch_size", "horizon", "copies", "stats_batches", "log_every", "max_bad_steps",
                     "planner_contexts", "planner_iterations", "planner_futures", "reached_every", "reached_episodes",
                     "reached_steps", "reached_stride"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"PolicyTrainConfig.{name} = {getattr(self, name)}: expected >= 1")
        if self.warmup_steps < 0 or self.anchor_weight < 0:
            raise ValueError(f"PolicyTrainConfig: warmup_steps and anchor_weight must be >= 0, got "
                             f"{self.warmup_steps}, {self.anchor_weight}")
        if self.anchor_weight and self.method in ONE_STEP_METHODS:
            raise ValueError(f"anchor_weight is a trust region for the imagining methods; {self.method} "
                             "regresses its targets directly")
        if not 0 <= self.reached_fraction < 1:
            raise ValueError(f"PolicyTrainConfig.reached_fraction = {self.reached_fraction}: expected in [0, 1)")
        if self.reached_fraction and self.method not in COST_METHODS:
            raise ValueError(f"reached contexts have no recorded future: they serve the methods that minimise costs "
                             f"{COST_METHODS}, not {self.method}")
        if self.reached_fraction and not 1 <= self.reached_rows() < self.batch_size:
            raise ValueError(f"reached_fraction {self.reached_fraction} of a batch of {self.batch_size} is "
                             f"{self.reached_rows()} contexts: expected between 1 and {self.batch_size - 1}")
        if self.reached_stride > self.reached_steps:
            raise ValueError(f"PolicyTrainConfig: reached_stride {self.reached_stride} > reached_steps "
                             f"{self.reached_steps}: no context would be kept")
        if self.window_origin not in WINDOW_ORIGINS:
            raise ValueError(f"PolicyTrainConfig.window_origin = {self.window_origin!r}: expected one of "
                             f"{WINDOW_ORIGINS}")
        if self.road_costs not in ROAD_COSTS:
            raise ValueError(f"PolicyTrainConfig.road_costs = {self.road_costs!r}: expected one of {ROAD_COSTS}")
        if self.speed_reference not in SPEED_REFERENCES:
            raise ValueError(f"PolicyTrainConfig.speed_reference = {self.speed_reference!r}: expected one of "
                             f"{SPEED_REFERENCES}")
        if self.lr <= 0 or self.grad_clip <= 0 or self.planner_lr <= 0:
            raise ValueError(f"PolicyTrainConfig: lr, grad_clip and planner_lr must be > 0, got {self.lr}, "
                             f"{self.grad_clip}, {self.planner_lr}")
        if isinstance(self.weights, dict):
            self.weights = CostWeights(**self.weights)
        if isinstance(self.policy, dict):
            self.policy = PolicyConfig.from_json(self.policy)
        if self.method != "mpur":
            self.copies = 1
            if self.weights.uncertainty:
                self.weights = dataclasses.replace(self.weights, uncertainty=0.0)
        elif self.copies < 2 and self.weights.uncertainty > 0:
            raise ValueError("mpur's uncertainty cost needs copies >= 2 (or --uncertainty-weight 0)")

    def reached_rows(self) -> int:
        """Contexts of every batch taken from the policy's own episodes (0 when reached_fraction is 0)."""
        return int(round(self.reached_fraction * self.batch_size))

    @classmethod
    def for_profile(cls, profile: str = "cpu", method: str = "mpur", **overrides: Any) -> "PolicyTrainConfig":
        """The preset ``profile`` with ``overrides`` (None values ignored; ``policy`` and ``weights`` as dicts)."""
        if profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r}; expected one of {sorted(PROFILES)}")
        preset = dict(PROFILES[profile])
        policy = dict(preset.pop("policy"))
        policy.update(overrides.pop("policy", None) or {})
        weights = dict(overrides.pop("weights", None) or {})
        preset.update({k: v for k, v in overrides.items() if v is not None})
        return cls(method=method, profile=profile, policy=PolicyConfig(**policy), weights=CostWeights(**weights),
                   **preset)

    def to_json(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["weights"] = self.weights.to_json()
        out["policy"] = self.policy.to_json()
        return out

    @classmethod
    def from_json(cls, obj: dict) -> "PolicyTrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(obj) - known)
        if unknown:
            raise ValueError(f"PolicyTrainConfig: unknown fields {unknown}")
        # runs saved before the field existed measured imagined windows from the context
        return cls(**{"window_origin": "context", **obj})
