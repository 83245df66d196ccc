"""Building blocks of the forward model (SPEC §5), small enough to reuse in the policy.

Why a separate module: the policy network uses "the same encoder design (own weights)"
(SPEC §6), so the image+state encoder, the conv decoder and the MLP live here, free of the
forward model's unrolling logic.

Shapes with the reference sizes (117 x 24 images, convs of 64, 128, 256 maps): every conv is
4 x 4, stride 2, padding 1, so 117 x 24 -> 58 x 12 -> 29 x 6 -> 14 x 3; the decoder mirrors it
with 4 x 4 stride-2 transposed convs whose ``output_padding`` restores the odd sizes
(14 x 3 -> 29 x 6 -> 58 x 12 -> 117 x 24). :func:`encoder_sizes` computes the sizes for any
image size and depth.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

KERNEL, STRIDE, PADDING = 4, 2, 1
NEGATIVE_SLOPE = 0.2
"""LeakyReLU slope used throughout."""


def encoder_sizes(height: int, width: int, depth: int) -> list[tuple[int, int]]:
    """Spatial sizes ``[(H, W) of the input, after conv 1, ..., after conv depth]``.

    Raises ``ValueError`` if the image is too small for ``depth`` stride-2 convs.
    """
    sizes = [(height, width)]
    for _ in range(depth):
        h, w = sizes[-1]
        h, w = (h + 2 * PADDING - KERNEL) // STRIDE + 1, (w + 2 * PADDING - KERNEL) // STRIDE + 1
        if h < 1 or w < 1:
            raise ValueError(f"image of {height} x {width} pixels is too small for {depth} stride-2 convolutions")
        sizes.append((h, w))
    return sizes


def activation() -> nn.Module:
    return nn.LeakyReLU(NEGATIVE_SLOPE)


class MLP(nn.Sequential):
    """``in -> hidden -> ... -> out``: Linear, LeakyReLU, Dropout per hidden layer; linear output.

    Args:
        in_features, hidden, out_features: widths.
        dropout: probability of the Dropout after each hidden layer.
        layers: number of Linear layers (>= 1).
    """

    def __init__(self, in_features: int, hidden: int, out_features: int, dropout: float, layers: int = 3):
        if layers < 1:
            raise ValueError(f"MLP with {layers} layers: expected >= 1")
        widths = [in_features] + [hidden] * (layers - 1) + [out_features]
        modules: list[nn.Module] = []
        for i in range(layers):
            modules.append(nn.Linear(widths[i], widths[i + 1]))
            if i < layers - 1:
                modules += [activation(), nn.Dropout(dropout)]
        super().__init__(*modules)


class ConvEncoder(nn.Sequential):
    """Stride-2 4 x 4 convolutions: ``(B, in_channels, H, W) -> (B, widths[-1], h, w)``.

    Each conv but the last is followed by LeakyReLU and Dropout2d; the last output is linear so
    that embeddings added to it (states, action, latent) enter on an equal footing.
    """

    def __init__(self, in_channels: int, widths: Sequence[int], dropout: float):
        modules: list[nn.Module] = []
        channels = [in_channels, *widths]
        for i in range(len(widths)):
            modules.append(nn.Conv2d(channels[i], channels[i + 1], KERNEL, STRIDE, PADDING))
            if i < len(widths) - 1:
                modules += [activation(), nn.Dropout2d(dropout)]
        super().__init__(*modules)


class ConvDecoder(nn.Sequential):
    """Mirror of :class:`ConvEncoder`: ``(B, widths[0], h, w) -> (B, out_channels, H, W)``.

    Args:
        widths: the encoder's widths (e.g. (64, 128, 256)); the decoder runs them backwards.
        out_channels: output maps (linear: the caller applies its own output function).
        sizes: :func:`encoder_sizes` of the image, used to set each ``output_padding``.
        dropout: Dropout2d probability after each hidden transposed conv.

    Each transposed conv but the last is followed by LeakyReLU and Dropout2d. The encoder's
    map is linear (a sum of embeddings), so the caller applies a nonlinearity before this.
    """

    def __init__(self, widths: Sequence[int], out_channels: int, sizes: Sequence[tuple[int, int]], dropout: float):
        depth = len(widths)
        if len(sizes) != depth + 1:
            raise ValueError(f"{len(sizes)} sizes for {depth} layers: expected {depth + 1}")
        channels = [*reversed(widths), out_channels]
        modules: list[nn.Module] = []
        for i in range(depth):
            (h_in, w_in), (h_out, w_out) = sizes[depth - i], sizes[depth - i - 1]
            pad_h = h_out - ((h_in - 1) * STRIDE - 2 * PADDING + KERNEL)
            pad_w = w_out - ((w_in - 1) * STRIDE - 2 * PADDING + KERNEL)
            modules.append(nn.ConvTranspose2d(channels[i], channels[i + 1], KERNEL, STRIDE, PADDING,
                                              output_padding=(pad_h, pad_w)))
            if i < depth - 1:
                modules += [activation(), nn.Dropout2d(dropout)]
        super().__init__(*modules)


class ImageStateEncoder(nn.Module):
    """Context frames stacked on channels, plus their states, to one hidden map (SPEC §5).

    ``images (B, T, C, H, W)`` in [0, 1] and ``states (B, T, S)`` normalised ->
    ``(B, widths[-1], h, w)``: the conv stack of the T*C stacked channels plus an MLP of the
    T*S flattened states reshaped to the same map. With ``state_dim = 0`` the states are not
    read (pass a (B, T, 0) tensor or any states: they are ignored).
    """

    def __init__(self, frames: int, image_channels: int, image_size: tuple[int, int], state_dim: int,
                 widths: Sequence[int], hidden_mlp: int, dropout: float):
        super().__init__()
        self.frames, self.image_channels, self.state_dim = frames, image_channels, state_dim
        self.image_size = tuple(image_size)
        self.sizes = encoder_sizes(image_size[0], image_size[1], len(widths))
        self.map_shape = (widths[-1], *self.sizes[-1])
        self.convs = ConvEncoder(frames * image_channels, widths, dropout)
        self.state_embed = MLP(frames * state_dim, hidden_mlp, map_numel(self.map_shape), dropout) if state_dim else None

    def forward(self, images: Tensor, states: Tensor) -> Tensor:
        B = images.shape[0]
        expected = (B, self.frames, self.image_channels, *self.image_size)
        if tuple(images.shape) != expected:
            raise ValueError(f"images of shape {tuple(images.shape)}: expected {expected} (B, T, C, H, W)")
        h = self.convs(images.reshape(B, -1, *self.image_size))
        if self.state_embed is None:
            return h
        if tuple(states.shape) != (B, self.frames, self.state_dim):
            raise ValueError(f"states of shape {tuple(states.shape)}: expected {(B, self.frames, self.state_dim)}")
        return h + self.state_embed(states.reshape(B, -1)).view(B, *self.map_shape)


def map_numel(shape: Sequence[int]) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


def kl_standard_normal(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) summed over the last dimension: ``(..., D) -> (...)``.

    Closed form: 0.5 * sum(mu^2 + exp(logvar) - logvar - 1) >= 0.
    """
    return 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1.0).sum(dim=-1)


def blend_frame(gate_logits: Tensor, content_logits: Tensor, last_frame: Tensor) -> Tensor:
    """Next frame as a per-pixel convex mix of the last frame and new content, in [0, 1].

    ``next = g * last + (1 - g) * sigmoid(content)`` with ``g = sigmoid(gate)``: a gate near 1
    copies the last frame (static road, slow traffic), near 0 paints new content. All three
    tensors are (B, C, H, W); ``last_frame`` in [0, 1].
    """
    gate = torch.sigmoid(gate_logits)
    return gate * last_frame + (1.0 - gate) * torch.sigmoid(content_logits)
