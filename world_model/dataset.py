"""Training windows for the forward model: context frames, the actions taken, the frames that followed.

A *window* is ``context + predicted_steps`` consecutive frames of one recorded
vehicle: its egocentric observations, its state and the action it took at each
frame, and the costs of each observation. The model sees the first ``context``
frames and the actions from the last context frame on, and predicts the
remaining ``predicted_steps`` frames (SPEC §5).

Where the windows come from is not this module's business (DESIGN: the world
model knows observations and actions, not where they come from). Anything with
the two methods of :class:`WindowSource` serves; the command line wires the
simulator's ``RecordedObservations`` in, so the images are always those of the
simulator's own rasteriser. Two data paths, chosen by measurement (BENCHMARKS.md,
"World model data path"):

* **render on the fly** (the default): every batch is rendered when it is needed,
  on the training device, by a background thread (:class:`Prefetcher`) one or two
  batches ahead of the model. Nothing is stored.
* :class:`MemmapCache`: every frame of the given vehicles rendered once into a
  uint8 ``numpy.memmap`` (4 x 117 x 24 = 11.2 kB a frame), windows then index it.
  Only worth it for small scenes on slow renderers: a 15-minute scene's training
  vehicles are about 15 GB.

State representation (an egocentric image cannot tell where along a 500 m road
the car is): the model's state is **(x - x_ref, y, vx, vy)** where ``x_ref`` is the
world-frame x of the vehicle at the *last context frame* of its window (so the
last context state always has x = 0 and the predicted x is the distance travelled
since); y (across the road, which the image shows through the lane markings and
the road edges), vx and vy stay world-frame. :func:`relative_states` and
:func:`absolute_states` convert; evaluation reports errors in absolute metres.
States and actions are then z-scored with statistics from the training split
(:meth:`WindowDataset.fit_normaliser`).

Sampling is a pure function of ``(seed, step)`` (:func:`sample_indices`): the batch
of a training step does not depend on what ran before, so a resumed run sees
exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

import os
import queue
import tempfile
import threading
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Iterable, Iterator, Protocol

import numpy as np
import torch
from torch import Tensor

from ppuu.world_model.normalisation import Normaliser

MODEL_CHANNELS = 3
"""Image channels the model sees and predicts: the first three of the simulator's observation
(lanes, vehicles, off-road). The fourth, the ego car's own footprint, is the same in every frame
of an egocentric window (the ego sits at the image centre), so it tells the model nothing its
size does not; stacked over 20 context frames it cost about 8 % of a training step."""
VEHICLES = 1
"""Index of the vehicles channel (the traffic) among the model's channels."""


class WindowsLike(Protocol):
    """What a source returns for B windows of T frames.

    Attributes:
        images: (B, T, C, H, W) float in [0, 1].
        states: (B, T, 4) = (x, y, vx, vy), m and m/s, world frame.
        actions: (B, T, 2) = (acceleration m/s^2, curvature 1/m) taken at each frame.
        costs: (B, T, K) costs of each observation (K = 3: proximity, lane, off-road).
        size: (B, 2) vehicle (length, width), m.
    """

    images: Tensor
    states: Tensor
    actions: Tensor
    costs: Tensor
    size: Tensor


class WindowSource(Protocol):
    """Where windows come from (e.g. ``ppuu.simulator.recording.RecordedObservations``)."""

    def window_starts(self, vehicle_ids: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
        """Every window of ``length`` frames of the vehicles: (vehicle_id (W,), start_frame (W,))."""
        ...

    def windows(self, vehicle_ids: np.ndarray, start_frames: np.ndarray, length: int) -> WindowsLike:
        """B windows of ``length`` frames, rendered in one call."""
        ...


@dataclass
class Batch:
    """One batch of training windows, model-ready (B windows, T context frames, N predicted steps).

    Attributes:
        context_images: (B, T, C, H, W) float in [0, 1].
        context_states: (B, T, 4) normalised relative states (see the module docstring).
        actions: (B, N, 2) normalised actions; ``actions[:, 0]`` is taken at the last context frame.
        target_images: (B, N, C, H, W) float in [0, 1], the frames that followed.
        target_states: (B, N, 4) normalised relative states of those frames.
        target_costs: (B, N, K) costs of the target observations.
        origin: (B,) m, x_ref: world-frame x of the last context frame.
        size: (B, 2) m, vehicle (length, width).
    """

    context_images: Tensor
    context_states: Tensor
    actions: Tensor
    target_images: Tensor
    target_states: Tensor
    target_costs: Tensor
    origin: Tensor
    size: Tensor

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "Batch":
        return Batch(**{f.name: getattr(self, f.name).to(device, non_blocking=non_blocking) for f in fields(self)})

    def pin_memory(self) -> "Batch":
        return Batch(**{f.name: getattr(self, f.name).pin_memory() for f in fields(self)})

    def __len__(self) -> int:
        return self.context_images.shape[0]

    def head(self, rows: int) -> "Batch":
        """The first ``rows`` windows."""
        return Batch(**{f.name: getattr(self, f.name)[:rows] for f in fields(self)})


def relative_states(states: Tensor, reference: int) -> tuple[Tensor, Tensor]:
    """World-frame states to the model's relative states.

    Args:
        states: (B, T, 4) (x, y, vx, vy), m and m/s.
        reference: index of the frame whose x becomes 0 (the last context frame).

    Returns:
        (relative (B, T, 4), origin (B,) m): relative = states with x - origin.
    """
    origin = states[:, reference, 0]
    rel = states.clone()
    rel[..., 0] = states[..., 0] - origin[:, None]
    return rel, origin


def absolute_states(relative: Tensor, origin: Tensor) -> Tensor:
    """Inverse of :func:`relative_states`: relative (B, N, 4) and origin (B,) m -> world-frame (B, N, 4)."""
    out = relative.clone()
    out[..., 0] = relative[..., 0] + origin[:, None].to(relative.dtype)
    return out


def make_batch(w: WindowsLike, context: int, normaliser: Normaliser, channels: int = MODEL_CHANNELS) -> Batch:
    """Split windows of T + N frames into a model-ready :class:`Batch`: relative, z-scored states and actions.

    The actions of the batch are those taken at frames T-1 .. T+N-2 (the last context frame's
    action produces the first predicted frame). Only the first ``channels`` image channels are
    kept (:data:`MODEL_CHANNELS`).
    """
    T = context
    N = w.images.shape[1] - T
    if N < 1:
        raise ValueError(f"windows of {w.images.shape[1]} frames leave nothing to predict after {T} context frames")
    if not 1 <= channels <= w.images.shape[2]:
        raise ValueError(f"channels = {channels}: the windows have {w.images.shape[2]} image channels")
    norm = normaliser.to(w.states.device)
    rel, origin = relative_states(w.states.float(), T - 1)
    states = norm.normalise_states(rel)
    actions = norm.normalise_actions(w.actions[:, T - 1:T - 1 + N].float())
    return Batch(
        context_images=w.images[:, :T, :channels].float(),
        context_states=states[:, :T],
        actions=actions,
        target_images=w.images[:, T:, :channels].float(),
        target_states=states[:, T:],
        target_costs=w.costs[:, T:].float(),
        origin=origin,
        size=w.size.float(),
    )


def _mix(*words: int) -> int:
    """A 63-bit seed from non-negative integers, well mixed (numpy's SeedSequence)."""
    return int(np.random.SeedSequence([int(w) for w in words]).generate_state(1, np.uint64)[0] >> np.uint64(1))


def sample_indices(count: int, seed: int, step: int, batch_size: int, rank: int = 0, world_size: int = 1) -> np.ndarray:
    """The window indices of one training step: a pure function of (seed, step).

    The global batch of ``batch_size`` windows is drawn uniformly with replacement from
    ``count`` windows; process ``rank`` of ``world_size`` takes its contiguous slice.

    Returns:
        (batch_size // world_size,) int64 indices.
    """
    if batch_size % world_size:
        raise ValueError(f"batch size {batch_size} is not divisible by the {world_size} processes")
    rng = np.random.default_rng([seed, step, 0x5EED])
    chosen = rng.integers(0, count, size=batch_size)
    per = batch_size // world_size
    return chosen[rank * per:(rank + 1) * per]


def step_seed(seed: int, step: int, rank: int = 0) -> int:
    """The torch seed of one training step of one process (dropout masks, latent samples)."""
    return _mix(seed, step, rank, 0xD20)


class WindowDataset:
    """All windows of ``context + predicted_steps`` frames of some vehicles of one source.

    Args:
        source: a :class:`WindowSource`.
        vehicle_ids: the vehicles (e.g. the training split); only their own recordings are windowed.
        context: T, context frames (20 = 2 s).
        predicted_steps: N, predicted frames.
        normaliser: statistics of states and actions; :meth:`batch` needs one
            (fit it with :meth:`fit_normaliser` on the training split).
        channels: image channels kept in a batch (the model's ``image_channels``).
    """

    def __init__(self, source: WindowSource, vehicle_ids: Iterable[int], context: int = 20,
                 predicted_steps: int = 20, normaliser: Normaliser | None = None, channels: int = MODEL_CHANNELS):
        if context < 1 or predicted_steps < 1:
            raise ValueError(f"context and predicted_steps must be >= 1, got {context}, {predicted_steps}")
        self.source = source
        self.context = int(context)
        self.predicted_steps = int(predicted_steps)
        self.normaliser = normaliser
        self.channels = int(channels)
        ids = np.asarray(list(vehicle_ids), dtype=np.int64)
        if len(ids) == 0:
            raise ValueError("no vehicles to take windows from (is the split empty?)")
        self.vehicle_ids, self.start_frames = (np.asarray(a, dtype=np.int64)
                                               for a in source.window_starts(ids, self.length))
        if len(self.vehicle_ids) == 0:
            raise ValueError(f"none of the {len(ids)} vehicles is recorded for {self.length} frames "
                             f"({self.context} context + {self.predicted_steps} predicted)")

    @property
    def length(self) -> int:
        """Frames per window: context + predicted steps."""
        return self.context + self.predicted_steps

    def __len__(self) -> int:
        return len(self.vehicle_ids)

    def raw(self, indices: np.ndarray) -> WindowsLike:
        """The source's windows for ``indices`` (world-frame, not normalised)."""
        indices = np.asarray(indices, dtype=np.int64)
        return self.source.windows(self.vehicle_ids[indices], self.start_frames[indices], self.length)

    def batch(self, indices: np.ndarray) -> Batch:
        """Render and normalise the windows ``indices`` (B,) into a :class:`Batch` (on the source's device)."""
        if self.normaliser is None:
            raise ValueError("WindowDataset.batch needs a normaliser (fit_normaliser on the training split)")
        return self.to_batch(self.raw(indices))

    def to_batch(self, w: WindowsLike, normaliser: Normaliser | None = None) -> Batch:
        """A source's windows to a normalised :class:`Batch` (with ``normaliser``, default :attr:`normaliser`)."""
        return make_batch(w, self.context, normaliser or self.normaliser, self.channels)

    def fit_normaliser(self, windows: int = 1024, seed: int = 0, chunk: int = 128) -> Normaliser:
        """Statistics of relative states and actions over a fixed random sample of windows.

        Call it on the training split's dataset only. Sets and returns :attr:`normaliser`.

        Args:
            windows: windows sampled (all of them when there are fewer).
            seed: sampling seed.
            chunk: windows rendered per call (bounds memory).
        """
        rng = np.random.default_rng([seed, 0x57A7])
        n = min(windows, len(self))
        indices = np.sort(rng.choice(len(self), size=n, replace=False))
        states, actions = [], []
        for lo in range(0, n, chunk):
            w = self.raw(indices[lo:lo + chunk])
            rel, _ = relative_states(w.states.float(), self.context - 1)
            states.append(rel.reshape(-1, 4).cpu())
            actions.append(w.actions.float().reshape(-1, w.actions.shape[-1]).cpu())
        self.normaliser = Normaliser.from_data(torch.cat(states), torch.cat(actions))
        return self.normaliser

    def fixed_indices(self, count: int, seed: int = 0) -> np.ndarray:
        """A fixed random subset of ``count`` windows (validation, evaluation), sorted."""
        rng = np.random.default_rng([seed, 0x7A1])
        return np.sort(rng.choice(len(self), size=min(count, len(self)), replace=False))


class Prefetcher:
    """Renders the batches of the coming steps in a background thread, ``depth`` batches ahead.

    Rendering is torch work, which releases the GIL, so it overlaps the model's step
    (on a GPU, both are queued on the device; the thread hides the Python and launch
    overhead). The batch of a step depends only on (seed, step): see :func:`sample_indices`.

    Args:
        dataset: the training :class:`WindowDataset` (with its normaliser).
        steps: the steps to produce, in order.
        seed, batch_size, rank, world_size: see :func:`sample_indices`.
        device: where the batches go (the model's device).
        depth: batches rendered ahead.

    Iterating yields ``(step, batch)``; :meth:`close` stops the thread.
    """

    def __init__(self, dataset: WindowDataset, steps: Iterable[int], seed: int, batch_size: int,
                 device: torch.device | str, rank: int = 0, world_size: int = 1, depth: int = 2):
        self.dataset = dataset
        self.steps = list(steps)
        self.seed, self.batch_size, self.rank, self.world_size = seed, batch_size, rank, world_size
        self.device = torch.device(device)
        # The current CUDA device is per thread, and set_device needs an index: the model's, read here.
        self._cuda_index = None if self.device.type != "cuda" else \
            self.device.index if self.device.index is not None else torch.cuda.current_device()
        self.queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="ppuu-prefetch", daemon=True)
        self.thread.start()

    def _make(self, step: int) -> Batch:
        idx = sample_indices(len(self.dataset), self.seed, step, self.batch_size, self.rank, self.world_size)
        batch = self.dataset.batch(idx)
        if batch.context_images.device != self.device:
            if self.device.type == "cuda":
                batch = batch.pin_memory().to(self.device, non_blocking=True)
            else:
                batch = batch.to(self.device)
        return batch

    def _run(self) -> None:
        try:                                             # every failure reaches the consumer (none hangs it)
            if self._cuda_index is not None:
                torch.cuda.set_device(self._cuda_index)
            for step in self.steps:
                if self.stopped.is_set():
                    return
                item = (step, self._make(step))
                while not self.stopped.is_set():
                    try:
                        self.queue.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
        except BaseException as exc:                     # handed to the consumer, raised there
            self.queue.put(("error", exc))
            return
        self.queue.put(("end", None))

    def __iter__(self) -> Iterator[tuple[int, Batch]]:
        while True:
            tag, item = self.queue.get()
            if tag == "end":
                return
            if tag == "error":
                raise item
            yield tag, item

    def close(self) -> None:
        self.stopped.set()
        while self.thread.is_alive():
            try:
                self.queue.get(timeout=0.05)
            except queue.Empty:
                pass
        self.thread.join()

    def __enter__(self) -> "Prefetcher":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


@dataclass
class _CachedWindows:
    images: Tensor
    states: Tensor
    actions: Tensor
    costs: Tensor
    size: Tensor


class MemmapCache:
    """A :class:`WindowSource` reading windows from a uint8 memory-mapped cache of every frame.

    Every frame of every given vehicle is rendered once (by ``source``, in chunks) into
    ``folder/images.u8`` (rows, C, H, W) uint8 (the [0, 1] coverage quantised to 1/255),
    with the states, actions, costs and sizes beside it in small ``.npy`` files. A window
    is then one contiguous slice of rows per vehicle.

    Args:
        source: the renderer.
        vehicle_ids: the vehicles to cache; windows of other vehicles are refused.
        folder: where the cache files go (created; an existing complete cache of the same
            vehicles is reused).
        device: where :meth:`windows` puts its tensors.
        chunk_frames: frames rendered per call while building.
    """

    def __init__(self, source: WindowSource, vehicle_ids: Iterable[int], folder: str | Path,
                 device: torch.device | str = "cpu", chunk_frames: int = 4096, progress: bool = False):
        self.source = source
        self.device = torch.device(device)
        self.folder = Path(folder)
        ids = np.unique(np.asarray(list(vehicle_ids), dtype=np.int64))
        firsts = []
        lengths = []
        # Each vehicle's whole recording is its single longest window; length-1 windows enumerate frames.
        vids, starts = source.window_starts(ids, 1)
        vids, starts = np.asarray(vids, dtype=np.int64), np.asarray(starts, dtype=np.int64)
        for v in ids:
            s = starts[vids == v]
            firsts.append(int(s.min()) if len(s) else 0)
            lengths.append(len(s))
        self.ids = ids
        self.first = np.array(firsts, dtype=np.int64)
        self.count = np.array(lengths, dtype=np.int64)
        self.offset = np.concatenate([[0], np.cumsum(self.count)])[:-1]
        self.rows = int(self.count.sum())
        done = self.folder / "complete.npy"
        if done.is_file() and np.array_equal(np.load(done), ids):
            self.images = np.memmap(self.folder / "images.u8", dtype=np.uint8, mode="r")
            self.images = self.images.reshape(self.rows, *np.load(self.folder / "shape.npy"))
            self.states = np.load(self.folder / "states.npy", mmap_mode="r")
            self.actions = np.load(self.folder / "actions.npy", mmap_mode="r")
            self.costs = np.load(self.folder / "costs.npy", mmap_mode="r")
            self.sizes = np.load(self.folder / "sizes.npy")
        else:
            self._build(vids, starts, chunk_frames, progress)

    def _build(self, vids: np.ndarray, starts: np.ndarray, chunk_frames: int, progress: bool) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        order = np.lexsort((starts, vids))                  # vehicle, then frame: the row order
        vids, starts = vids[order], starts[order]
        probe = self.source.windows(vids[:1], starts[:1], 1)
        shape = tuple(probe.images.shape[2:])
        k = probe.costs.shape[-1]
        tmp = Path(tempfile.mkdtemp(prefix=".build.", dir=self.folder))
        images = np.memmap(tmp / "images.u8", dtype=np.uint8, mode="w+", shape=(self.rows, *shape))
        states = np.zeros((self.rows, 4), np.float32)
        actions = np.zeros((self.rows, 2), np.float32)
        costs = np.zeros((self.rows, k), np.float32)
        sizes = np.zeros((len(self.ids), 2), np.float32)
        chunks = range(0, self.rows, chunk_frames)
        if progress:
            from tqdm import tqdm
            chunks = tqdm(chunks, desc="caching frames", unit="chunk")
        for lo in chunks:
            hi = min(lo + chunk_frames, self.rows)
            w = self.source.windows(vids[lo:hi], starts[lo:hi], 1)
            images[lo:hi] = (w.images[:, 0].clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
            states[lo:hi] = w.states[:, 0].float().cpu().numpy()
            actions[lo:hi] = w.actions[:, 0].float().cpu().numpy()
            costs[lo:hi] = w.costs[:, 0].float().cpu().numpy()
            sizes[np.searchsorted(self.ids, vids[lo:hi])] = w.size.float().cpu().numpy()
        images.flush()
        del images
        for name, value in (("states", states), ("actions", actions), ("costs", costs), ("sizes", sizes),
                            ("shape", np.array(shape))):
            np.save(tmp / f"{name}.npy", value)
        np.save(tmp / "complete.npy", self.ids)
        for f in tmp.iterdir():
            os.replace(f, self.folder / f.name)
        tmp.rmdir()
        self.images = np.memmap(self.folder / "images.u8", dtype=np.uint8, mode="r").reshape(self.rows, *shape)
        self.states, self.actions, self.costs, self.sizes = states, actions, costs, sizes

    @property
    def nbytes(self) -> int:
        """Bytes on disk of the image cache."""
        return int(self.images.size)

    def window_starts(self, vehicle_ids: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
        vehicle_ids = np.asarray(vehicle_ids, dtype=np.int64)
        pos = self._positions(vehicle_ids)
        count = np.clip(self.count[pos] + 1 - length, 0, None)
        owner = np.repeat(np.arange(len(vehicle_ids)), count)
        offset = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
        return vehicle_ids[owner], self.first[pos][owner] + offset

    def _positions(self, vehicle_ids: np.ndarray) -> np.ndarray:
        pos = np.searchsorted(self.ids, vehicle_ids)
        pos = np.clip(pos, 0, len(self.ids) - 1)
        if not np.array_equal(self.ids[pos], vehicle_ids):
            raise ValueError("MemmapCache: a vehicle is not in the cache")
        return pos

    def windows(self, vehicle_ids: np.ndarray, start_frames: np.ndarray, length: int) -> _CachedWindows:
        vehicle_ids = np.asarray(vehicle_ids, dtype=np.int64)
        start_frames = np.asarray(start_frames, dtype=np.int64)
        pos = self._positions(vehicle_ids)
        local = start_frames - self.first[pos]
        if (local < 0).any() or (local + length > self.count[pos]).any():
            raise ValueError("a window reaches outside its vehicle's recording; use window_starts()")
        rows = (self.offset[pos] + local)[:, None] + np.arange(length)          # (B, T)
        # One contiguous read per window (rows of a window are consecutive).
        images = np.stack([self.images[r[0]:r[0] + length] for r in rows])
        images = torch.from_numpy(images).to(self.device).float().div_(255.0)
        flat = rows.reshape(-1)
        B = len(rows)

        def t(a: np.ndarray) -> Tensor:
            return torch.from_numpy(np.asarray(a[flat])).reshape(B, length, -1).to(self.device)

        return _CachedWindows(images=images, states=t(self.states), actions=t(self.actions), costs=t(self.costs),
                              size=torch.from_numpy(self.sizes[pos]).to(self.device))
