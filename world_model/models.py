"""The stochastic forward model of the traffic (SPEC §5): a VAE with dropout, unrolled.

One step maps T context frames (egocentric images and normalised ego states) and the action
at the last context step to the next frame and state. A latent z, drawn from a posterior
network that sees the true next frame (training) or from the prior N(0, I) (planning),
carries what the action does not explain (the other drivers' choices). Dropout stays in the
network so that the planner can measure the model's uncertainty by running it with several
dropout masks (SPEC §4). ``latent_dim = 0`` is the deterministic model (warm start and
baseline).

Shapes of one step with the reference sizes (4 x 4 stride-2 convs, padding 1, see
:mod:`ppuu.world_model.layers`)::

    context images (B, T, C, 117, 24) -> stacked (B, T*C, 117, 24) -> convs -> (B, 256, 14, 3)
    context states (B, T, S) -> MLP -> (B, 256*14*3) -> view -> added
    action (B, A) -> MLP -> added                              = the hidden map
    posterior: hidden map + convs(target frame (B, C, 117, 24)), flattened, ++ target state (B, S)
               -> MLP -> mu, logvar (B, Z)
    z (B, Z) -> Linear -> added
    hidden map -> LeakyReLU, Dropout2d -> transposed convs -> (B, 2C, 117, 24) gate + content
                                       -> flattened MLP -> (B, S) state change

Next frame: ``g * last_frame + (1 - g) * sigmoid(content)`` with ``g = sigmoid(gate)`` (per
pixel and channel). SPEC's "sigmoid of the output plus the last input frame" keeps outputs in
[0, 1] but cannot copy the last frame; this convex mix can (a gate near 1), stays in [0, 1],
and its gradient does not vanish on pixels that change (a residual in logit space does: a
pixel at 0 sits where the sigmoid is flat). The gate's bias starts at :data:`GATE_BIAS`, so
an untrained model starts near "copy the last frame". The C channels fed and predicted are
the observation's lanes, vehicles and off-road (the simulator's ego channel is constant in an
egocentric window and is left out).

Next state, two options (``ego_kinematics``):

* ``True`` (the default): the ego state is advanced by the differentiable kinematic model
  (:mod:`ppuu.world_model.kinematics`, the simulator's unicycle) on de-normalised states and
  actions (pass the :class:`~ppuu.world_model.normalisation.Normaliser` as ``stats``): exact, and
  its gradient reaches the action analytically. The images stay egocentric, so the network
  still has to learn how the traffic moves *relative to* the ego. (This is not Sobal et al.
  2022's separation of the world and ego models, which also renders the frames in a fixed
  frame and places the cost masks at the ego's pose.) Chosen as the default because the
  learned head predicts position worse than constant velocity (BENCHMARKS.md, "World model").
* ``False`` (Henaff 2019): ``last state + MLP(hidden map)`` in normalised units, learned with
  the images.

Autoregression: each step's predicted frame and state are appended to the context and the
oldest frame dropped (a sliding window of T frames), so a 20-step unroll conditions later
steps on the model's own predictions.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Callable

import torch
from torch import Tensor, nn

from .kinematics import kinematic_step
from .layers import (
    MLP,
    ConvDecoder,
    ConvEncoder,
    ImageStateEncoder,
    activation,
    blend_frame,
    kl_standard_normal,
    map_numel,
)
from .normalisation import Normaliser

Z_SOURCES = ("posterior", "prior", "given")
GATE_BIAS = 2.0
"""Initial bias of the frame gate's logits: sigmoid(2) = 0.88, so an untrained model starts
near "copy the last frame" (measured on the overfitting test: image MSE 0.0020 vs 0.0033
after 150 Adam steps with a bias of 0)."""


@dataclass
class ModelConfig:
    """Sizes of the forward model.

    The defaults are the reference's sizes: 10,908,294 parameters (7,058,566 with
    ``latent_dim = 0``); with the learned state head (``ego_kinematics=False``, as the
    reference) 13,727,882. 117 x 24 images to a 256 x 14 x 3 hidden map.

    Attributes:
        context: T, context frames (0.1 s apart).
        image_channels: C, the observation channels fed and predicted: the first C of the
            simulator's (lanes, vehicles, off-road; the constant ego channel is left out, see
            :data:`ppuu.world_model.dataset.MODEL_CHANNELS`).
        image_height, image_width: pixels.
        state_dim: S, (x, y, vx, vy) normalised.
        action_dim: A, (acceleration, curvature) normalised.
        hidden_channels: widths of the stride-2 4 x 4 convs; the last is the hidden map's depth.
        hidden_mlp: width of every MLP's hidden layers.
        dropout: p of every Dropout / Dropout2d.
        latent_dim: Z; 0 = deterministic model (no z, no posterior network).
        z_dropout: probability, per step and sample, of drawing z from the prior instead of the
            posterior while training.
        ego_kinematics: advance the ego state with the kinematic model instead of a network
            (module docstring); needs ``state_dim == 4`` and ``action_dim == 2``.
        ego_model: "learned" (Henaff 2019: egocentric frames, the action conditions the step) or
            "kinematic" (Sobal 2022: frames in one fixed frame, the ego moved by the kinematic
            model, the network predicts the traffic only; implies ``ego_kinematics``).
        ego_conditioning: with ``ego_model="kinematic"``, what of the ego the traffic step sees:
            "state" (the ego's states and its next kinematic state, so predicted traffic can react
            to the ego) or "none" (traffic independent of the ego: the network reads neither the
            ego's states nor its plan, so one prediction serves every plan).
        static_channels: channel indices copied from the newest frame instead of predicted (in a
            fixed frame the lanes and off-road area do not move: (0, 2)).
        dt: seconds per step (kinematic model).
    """

    context: int = 20
    image_channels: int = 3
    image_height: int = 117
    image_width: int = 24
    state_dim: int = 4
    action_dim: int = 2
    hidden_channels: tuple = (64, 128, 256)
    hidden_mlp: int = 256
    dropout: float = 0.1
    latent_dim: int = 32
    z_dropout: float = 0.5
    ego_kinematics: bool = True
    ego_model: str = "learned"
    ego_conditioning: str = "state"
    static_channels: tuple = ()
    dt: float = 0.1

    def __post_init__(self) -> None:
        self.hidden_channels = tuple(int(c) for c in self.hidden_channels)
        positive = ("context", "image_channels", "image_height", "image_width", "state_dim", "action_dim",
                    "hidden_mlp")
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise ValueError(f"ModelConfig.{name} = {getattr(self, name)}: expected >= 1")
        if not self.hidden_channels or min(self.hidden_channels) < 1:
            raise ValueError(f"ModelConfig.hidden_channels = {self.hidden_channels}: expected positive widths")
        if self.latent_dim < 0:
            raise ValueError(f"ModelConfig.latent_dim = {self.latent_dim}: expected >= 0 (0 = deterministic)")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"ModelConfig.dropout = {self.dropout}: expected in [0, 1)")
        if not 0.0 <= self.z_dropout <= 1.0:
            raise ValueError(f"ModelConfig.z_dropout = {self.z_dropout}: expected in [0, 1]")
        if self.dt <= 0:
            raise ValueError(f"ModelConfig.dt = {self.dt}: expected > 0 seconds")
        self.static_channels = tuple(sorted(int(i) for i in self.static_channels))
        if self.ego_model not in ("learned", "kinematic"):
            raise ValueError(f"ModelConfig.ego_model = {self.ego_model!r}: expected 'learned' or 'kinematic'")
        if self.ego_conditioning not in ("state", "none"):
            raise ValueError(f"ModelConfig.ego_conditioning = {self.ego_conditioning!r}: expected 'state' or 'none'")
        if self.ego_model == "kinematic" and not self.ego_kinematics:
            raise ValueError("ModelConfig.ego_model 'kinematic' moves the ego with the kinematic model: "
                             "ego_kinematics must be True")
        if any(i < 0 or i >= self.image_channels for i in self.static_channels) \
                or len(set(self.static_channels)) == self.image_channels:
            raise ValueError(f"ModelConfig.static_channels = {self.static_channels}: expected distinct channel "
                             f"indices below {self.image_channels}, not all of them")
        if self.ego_kinematics and (self.state_dim != 4 or self.action_dim != 2):
            raise ValueError("ModelConfig.ego_kinematics needs state_dim 4 (x, y, vx, vy) and action_dim 2 "
                             f"(acceleration, curvature); got {self.state_dim} and {self.action_dim}")

    @property
    def stochastic(self) -> bool:
        return self.latent_dim > 0

    @property
    def dynamic_channels(self) -> tuple[int, ...]:
        """Channel indices the network predicts (all but :attr:`static_channels`)."""
        return tuple(i for i in range(self.image_channels) if i not in self.static_channels)

    @property
    def conditioning_dim(self) -> int:
        """Width of what conditions a step: the action (learned ego), the next ego state, or nothing (0)."""
        if self.ego_model == "learned":
            return self.action_dim
        return self.state_dim if self.ego_conditioning == "state" else 0

    def to_json(self) -> dict:
        """A JSON-able dict of plain values (lists, not tuples)."""
        d = asdict(self)
        d["hidden_channels"] = list(self.hidden_channels)
        d["static_channels"] = list(self.static_channels)
        return d

    @classmethod
    def from_json(cls, d: dict) -> ModelConfig:
        """Inverse of :meth:`to_json`; accepts a dict or a JSON string; unknown keys are an error."""
        if isinstance(d, str):
            d = json.loads(d)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"ModelConfig: unknown fields {unknown}; expected some of {sorted(known)}")
        return cls(**d)


@dataclass
class Prediction:
    """The result of an unroll of N steps.

    Attributes:
        images: (B, N, C, H, W) predicted observations in [0, 1].
        states: (B, N, S) predicted normalised states.
        kl: (B, N) KL(posterior || N(0, I)) per step; 0 where z came from the prior, was given,
            or the model is deterministic.
        z: (B, N, Z) the latents used (Z = 0 when deterministic).
    """

    images: Tensor
    states: Tensor
    kl: Tensor
    z: Tensor = field(repr=False)

    @classmethod
    def stack(cls, steps: list["StepOutput"], like: Tensor, state_dim: int, latent_dim: int) -> "Prediction":
        """The steps of an unroll, stacked on dim 1 (``like``: a (B, T, C, H, W) window, for N = 0)."""
        if not steps:
            B = like.shape[0]
            return cls(like.new_zeros(B, 0, *like.shape[2:]), like.new_zeros(B, 0, state_dim), like.new_zeros(B, 0),
                       like.new_zeros(B, 0, latent_dim))
        return cls(torch.stack([s.image for s in steps], 1), torch.stack([s.state for s in steps], 1),
                   torch.stack([s.kl for s in steps], 1), torch.stack([s.z for s in steps], 1))


@dataclass
class StepOutput:
    """One predicted step (B samples).

    Attributes:
        image: (B, C, H, W) predicted observation in [0, 1].
        state: (B, S) predicted normalised state.
        kl: (B,) KL(posterior || N(0, I)); 0 where z came from the prior, was given, or the model
            is deterministic.
        z: (B, Z) the latent used (Z = 0 when deterministic).
    """

    image: Tensor
    state: Tensor
    kl: Tensor
    z: Tensor = field(repr=False)


def slide(window: Tensor, new: Tensor) -> Tensor:
    """Append ``new`` (B, ...) to a window (B, T, ...) and drop its oldest entry: (B, T, ...)."""
    return torch.cat([window[:, 1:], new.unsqueeze(1)], dim=1)


class PosteriorNetwork(nn.Module):
    """q(z | context, action, next frame): hidden map + target image/state -> mu, logvar (B, Z).

    The target image goes through its own conv stack (one frame's channels, same widths) and is
    added to the context's hidden map (which already holds the context states and the action);
    the flattened sum, with the target state appended, goes through an MLP to 2Z numbers.
    """

    def __init__(self, config: ModelConfig, map_shape: tuple[int, int, int]):
        super().__init__()
        self.map_shape = map_shape
        self.latent_dim = config.latent_dim
        self.target_convs = ConvEncoder(config.image_channels, config.hidden_channels, config.dropout)
        self.readout = nn.Sequential(activation(), nn.Dropout2d(config.dropout))
        self.head = MLP(map_numel(map_shape) + config.state_dim, config.hidden_mlp, 2 * config.latent_dim,
                        config.dropout)

    def forward(self, hidden: Tensor, target_image: Tensor, target_state: Tensor) -> tuple[Tensor, Tensor]:
        """hidden (B, *map), target_image (B, C, H, W), target_state (B, S) -> mu, logvar (B, Z)."""
        h = self.readout(hidden + self.target_convs(target_image))
        out = self.head(torch.cat([h.flatten(1), target_state], dim=-1))
        return out[:, :self.latent_dim], out[:, self.latent_dim:]


class ForwardModel(nn.Module):
    """The forward model; see the module docstring for the architecture."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        c = config
        # Traffic independent of the ego sees neither its plan nor its states (which the plan moves).
        encoder_states = 0 if c.ego_model == "kinematic" and c.ego_conditioning == "none" else c.state_dim
        self.encoder = ImageStateEncoder(c.context, c.image_channels, (c.image_height, c.image_width), encoder_states,
                                         c.hidden_channels, c.hidden_mlp, c.dropout)
        self.map_shape: tuple[int, int, int] = self.encoder.map_shape
        numel = map_numel(self.map_shape)
        self.condition_embed = MLP(c.conditioning_dim, c.hidden_mlp, numel, c.dropout) if c.conditioning_dim else None
        if c.stochastic:
            self.posterior = PosteriorNetwork(c, self.map_shape)
            self.z_embed = nn.Linear(c.latent_dim, numel)
        self.readout = nn.Sequential(activation(), nn.Dropout2d(c.dropout))
        dynamic = len(c.dynamic_channels)
        self.decoder = ConvDecoder(c.hidden_channels, 2 * dynamic, self.encoder.sizes, c.dropout)
        with torch.no_grad():   # start close to "copy the last frame" (gate about 0.88)
            self.decoder[-1].bias[:dynamic].fill_(GATE_BIAS)
        if not c.ego_kinematics:
            self.state_head = MLP(numel, c.hidden_mlp, c.state_dim, c.dropout)

    # ------------------------------------------------------------------ one step
    def encode(self, images: Tensor, states: Tensor) -> Tensor:
        """Context to hidden map: images (B, T, C, H, W) in [0, 1], states (B, T, S) normalised
        -> (B, hidden_channels[-1], h, w), (B, 256, 14, 3) with the reference sizes."""
        return self.encoder(images, states)

    def _decode(self, hidden: Tensor, last_image: Tensor) -> tuple[Tensor, Tensor]:
        """Hidden map (B, *map) -> next image (B, C, H, W) and readout features (B, numel).

        Static channels are the last frame's; the others a blend of it and new content."""
        r = self.readout(hidden)
        out = self.decoder(r)
        c = self.config
        if not c.static_channels:
            C = c.image_channels
            return blend_frame(out[:, :C], out[:, C:], last_image), r.flatten(1)
        # Channels taken and placed by slices, not by a list index: a list index becomes a host-to-device
        # copy at every step on a GPU (a wait, and no CUDA graph capture).
        dynamic = c.dynamic_channels
        D = len(dynamic)
        blended = blend_frame(out[:, :D], out[:, D:], torch.cat([last_image[:, i:i + 1] for i in dynamic], 1))
        pieces = [blended[:, dynamic.index(i):dynamic.index(i) + 1] if i in dynamic else last_image[:, i:i + 1]
                  for i in range(c.image_channels)]
        return torch.cat(pieces, 1), r.flatten(1)

    # ------------------------------------------------------------------ one step
    def step(self, images: Tensor, states: Tensor, action: Tensor, z_source: str = "prior", z: Tensor | None = None,
             target_image: Tensor | None = None, target_state: Tensor | None = None, z_dropout: float | None = None,
             stats: Normaliser | None = None) -> StepOutput:
        """Predict the frame and state that follow a context window under one action.

        Args:
            images: (B, T, C, H, W) context observations in [0, 1], oldest first.
            states: (B, T, S) normalised context states.
            action: (B, A) normalised, taken at the newest frame of the window.
            z_source: "prior" (z ~ N(0, I): planning), "posterior" (training: needs the target) or
                "given" (use ``z``). Irrelevant for a deterministic model.
            z: (B, Z) latent for ``z_source="given"``.
            target_image, target_state: (B, C, H, W) and (B, S), the true next frame and state, seen by
                the posterior (``z_source="posterior"`` with a stochastic model).
            z_dropout: probability per sample of replacing the posterior's z by a prior sample (KL 0
                there). None = ``config.z_dropout`` in train mode, 0 in eval mode.
            stats: the :class:`Normaliser`; required with ``config.ego_kinematics``.

        Returns:
            :class:`StepOutput`: image (B, C, H, W), state (B, S) normalised, kl (B,), z (B, Z).
        """
        c = self.config
        B, T = images.shape[:2]
        if tuple(images.shape[1:]) != (c.context, c.image_channels, c.image_height, c.image_width):
            raise ValueError(f"images of shape {tuple(images.shape)}: expected (B, {c.context} context frames, "
                             f"{c.image_channels} channels, {c.image_height}, {c.image_width})")
        if tuple(states.shape) != (B, T, c.state_dim):
            raise ValueError(f"states of shape {tuple(states.shape)}: expected {(B, T, c.state_dim)}")
        if tuple(action.shape) != (B, c.action_dim):
            raise ValueError(f"action of shape {tuple(action.shape)}: expected (B={B}, {c.action_dim})")
        if z_source not in Z_SOURCES:
            raise ValueError(f"z_source = {z_source!r}: expected one of {Z_SOURCES}")
        if c.ego_kinematics and stats is None:
            raise ValueError("ego_kinematics: pass stats (the Normaliser) to de-normalise states and actions")
        if z_dropout is None:
            z_dropout = c.z_dropout if self.training else 0.0
        if not 0.0 <= z_dropout <= 1.0:
            raise ValueError(f"z_dropout = {z_dropout}: expected in [0, 1]")
        if c.stochastic and z_source == "posterior" and (target_image is None or target_state is None):
            raise ValueError("z_source='posterior' needs the target image and state (the true future)")
        if c.stochastic and z_source == "given" and (z is None or tuple(z.shape) != (B, c.latent_dim)):
            raise ValueError(f"z_source='given' needs z of shape {(B, c.latent_dim)}; got "
                             f"{None if z is None else tuple(z.shape)}")

        last_state = states[:, -1]
        next_state = None
        if c.ego_kinematics:
            physical = kinematic_step(stats.denormalise_states(last_state), stats.denormalise_actions(action), c.dt)
            next_state = stats.normalise_states(physical)
        hidden = self.encode(images, states)
        if self.condition_embed is not None:
            condition = action if c.ego_model == "learned" else next_state
            hidden = hidden + self.condition_embed(condition).view(B, *self.map_shape)
        kl = torch.zeros(B, device=images.device, dtype=torch.promote_types(images.dtype, torch.float32))
        z_t = images.new_zeros(B, 0)
        if c.stochastic:
            z_t, kl = self._latent(hidden, z_source, z, target_image, target_state, z_dropout)
            hidden = hidden + self.z_embed(z_t).view(B, *self.map_shape)
        next_image, features = self._decode(hidden, images[:, -1])
        if next_state is None:
            next_state = last_state + self.state_head(features)
        return StepOutput(next_image, next_state, kl, z_t)

    # ------------------------------------------------------------------ unroll
    def forward(self, images: Tensor, states: Tensor, actions: Tensor, target_images: Tensor | None = None,
                target_states: Tensor | None = None, z_source: str = "posterior", z: Tensor | None = None,
                z_dropout: float | None = None, stats: Normaliser | None = None) -> Prediction:
        """Autoregressive unroll over N = actions.shape[1] steps of :meth:`step` with given actions.

        Args:
            images: (B, T, C, H, W) context observations in [0, 1], oldest first.
            states: (B, T, S) normalised context states.
            actions: (B, N, A) normalised; ``actions[:, t]`` is taken at the newest frame of the
                window and produces predicted step t.
            target_images, target_states: (B, N, C, H, W) and (B, N, S), the true future;
                required for ``z_source="posterior"`` with a stochastic model (the posterior
                sees the target of each step), ignored otherwise.
            z_source: "posterior" (training), "prior" (z ~ N(0, I), planning) or "given" (use
                ``z``). Irrelevant for a deterministic model.
            z: (B, N, Z) latents for ``z_source="given"``.
            z_dropout, stats: as in :meth:`step`.

        Returns:
            :class:`Prediction` with images (B, N, C, H, W), states (B, N, S), kl (B, N), z (B, N, Z).
            The posterior's z is always sampled (reparameterised), in eval mode too.
        """
        c = self.config
        B = images.shape[0]
        if actions.dim() != 3 or actions.shape[0] != B or actions.shape[2] != c.action_dim:
            raise ValueError(f"actions of shape {tuple(actions.shape)}: expected (B={B}, N, {c.action_dim})")
        N = actions.shape[1]
        if c.stochastic and z_source == "posterior":
            if target_images is None or target_states is None:
                raise ValueError("z_source='posterior' needs target_images and target_states (the true future)")
            if tuple(target_images.shape) != (B, N, *images.shape[2:]):
                raise ValueError(f"target_images of shape {tuple(target_images.shape)}: "
                                 f"expected {(B, N, *images.shape[2:])}")
            if tuple(target_states.shape) != (B, N, c.state_dim):
                raise ValueError(f"target_states of shape {tuple(target_states.shape)}: expected {(B, N, c.state_dim)}")
        if c.stochastic and z_source == "given" and (z is None or tuple(z.shape) != (B, N, c.latent_dim)):
            got = None if z is None else tuple(z.shape)
            raise ValueError(f"z_source='given' needs z of shape {(B, N, c.latent_dim)}; got {got}")

        def at(t: int, x: Tensor | None) -> Tensor | None:
            return None if x is None else x[:, t]

        steps = []
        for t in range(N):
            out = self.step(images, states, actions[:, t], z_source, at(t, z), at(t, target_images),
                            at(t, target_states), z_dropout, stats)
            steps.append(out)
            images, states = slide(images, out.image), slide(states, out.state)
        return Prediction.stack(steps, like=images, state_dim=c.state_dim, latent_dim=c.latent_dim)

    unroll = forward

    def _latent(self, hidden: Tensor, z_source: str, z: Tensor | None, target_image: Tensor | None,
                target_state: Tensor | None, z_dropout: float) -> tuple[Tensor, Tensor]:
        """z (B, Z) and its KL (B,) for one step."""
        B, Z = hidden.shape[0], self.config.latent_dim
        kl_dtype = torch.promote_types(hidden.dtype, torch.float32)   # KL in >= float32, also under autocast
        zero = torch.zeros(B, device=hidden.device, dtype=kl_dtype)
        if z_source == "given":
            return z.to(hidden), zero
        prior = torch.randn(B, Z, device=hidden.device, dtype=hidden.dtype)
        if z_source == "prior" or z_dropout >= 1.0:
            return prior, zero
        mu, logvar = self.posterior(hidden, target_image, target_state)
        posterior = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        kl = kl_standard_normal(mu.to(kl_dtype), logvar.to(kl_dtype))
        if z_dropout > 0.0:
            from_prior = torch.rand(B, device=hidden.device) < z_dropout
            posterior = torch.where(from_prior.unsqueeze(-1), prior, posterior)
            kl = torch.where(from_prior, zero, kl)
        return posterior, kl


Policy = Callable[[Tensor, Tensor], Tensor]
"""A policy on model windows: (images (B, T, C, H, W), normalised states (B, T, S)) -> normalised
action (B, A)."""


def unroll_policy(model: ForwardModel, images: Tensor, states: Tensor, policy: Policy, steps: int,
                  z_source: str = "prior", z: Tensor | None = None, stats: Normaliser | None = None,
                  z_dropout: float | None = None) -> tuple[Prediction, Tensor]:
    """Unroll the model ``steps`` steps with a policy acting on each predicted window.

    At step t the policy sees the current window (the real context at t = 0, then a window
    whose newest frames are the model's own predictions) and its action drives the model's next
    step. Gradients flow through the model into the actions and the policy's parameters.

    Args:
        model: the forward model.
        images: (B, T, C, H, W) context in [0, 1]; states (B, T, S) normalised.
        policy: see :data:`Policy`.
        steps: N, steps to unroll.
        z_source: "prior" (planning) or "given" (``z`` (B, N, Z), e.g. the same latents for
            several dropout masks).
        stats, z_dropout: as in :meth:`ForwardModel.step`.

    Returns:
        (:class:`Prediction` of the N steps, the policy's actions (B, N, A) normalised).
    """
    if z_source not in ("prior", "given"):
        raise ValueError(f"z_source = {z_source!r}: a policy unroll has no true future, use 'prior' or 'given'")
    c = model.config
    if z_source == "given" and c.stochastic and (z is None or tuple(z.shape) != (images.shape[0], steps, c.latent_dim)):
        raise ValueError(f"z_source='given' needs z of shape {(images.shape[0], steps, c.latent_dim)}")
    outputs, actions = [], []
    for t in range(steps):
        action = policy(images, states)
        out = model.step(images, states, action, z_source, None if z is None else z[:, t], z_dropout=z_dropout,
                         stats=stats)
        outputs.append(out)
        actions.append(action)
        images, states = slide(images, out.image), slide(states, out.state)
    actions_t = torch.stack(actions, 1) if actions else images.new_zeros(images.shape[0], 0, c.action_dim)
    return Prediction.stack(outputs, like=images, state_dim=c.state_dim, latent_dim=c.latent_dim), actions_t


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
