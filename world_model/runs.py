"""Run plumbing shared by every training loop (world model, policy): one place, one behaviour.

What a training run needs besides its model and loss, and why it is here rather than in
each loop:

* **Threads and devices**: :func:`configure_threads` (``--threads``, ``PPUU_THREADS``, a
  default that does not collapse on a shared machine) and :func:`resolve_device` (CUDA when
  there is one, this process's GPU under ``torchrun``).
* **Several processes**: :class:`Distributed`, this process's place in a DDP job launched by
  ``torchrun`` (gloo on CPU, NCCL on CUDA).
* **Mixed precision**: :func:`use_amp` and :func:`autocast` (bf16 on CUDA by default).
* **Files that survive a kill**: :func:`atomic_save` (temporary file, fsync, rename) and
  checkpoints that are plain dicts of tensors and JSON-able values with a ``format`` and a
  ``kind`` field, read back with ``torch.load(weights_only=True)`` by
  :func:`load_checkpoint_file`, which names the file and what it expected when it is not one.
* **Resume = uninterrupted**: :func:`capture_rng_state` / :func:`restore_rng_state`, and
  :class:`MetricsLog`, which rewrites ``metrics.csv`` up to the resumed step.
"""

from __future__ import annotations

import csv
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor, nn

CHECKPOINT_FORMAT = "ppuu-checkpoint/1"
"""The ``format`` field of every checkpoint this project writes; its ``kind`` says what it holds."""

THREADS_ENV = "PPUU_THREADS"
"""Environment variable read by :func:`configure_threads` when no ``--threads`` is given."""


# ---------------------------------------------------------------------------------------------- threads, devices

def default_threads() -> int:
    """Half the CPU cores, at least 1.

    Why not torch's default (every core): on a shared 2-core machine torch's 2 threads made a
    closed-loop evaluation 7-13x slower than 1 thread (BENCHMARKS.md, "Threads"), because two
    busy threads fight over cores another process is using. Half the cores leaves room for the
    data-prefetch thread and for neighbours, at a small cost on an idle machine.
    """
    return max(1, (os.cpu_count() or 2) // 2)


def configure_threads(threads: int | None = None) -> int:
    """Set torch's intra-op thread count and return it.

    Args:
        threads: the count; None = the ``PPUU_THREADS`` environment variable, else
            :func:`default_threads`.
    """
    if threads is None:
        env = os.environ.get(THREADS_ENV, "").strip()
        if env:
            try:
                threads = int(env)
            except ValueError:
                raise ValueError(f"{THREADS_ENV}={env!r}: expected a positive integer") from None
        else:
            threads = default_threads()
    if threads < 1:
        raise ValueError(f"threads = {threads}: expected a positive integer")
    torch.set_num_threads(int(threads))
    return int(threads)


def resolve_device(device: str | torch.device | None, local_rank: int = 0) -> torch.device:
    """``None`` -> CUDA (this process's GPU under torchrun) when available, else CPU."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", local_rank % max(1, torch.cuda.device_count()))
    return dev


def use_amp(amp: bool | None, device: torch.device) -> bool:
    """bf16 autocast on? ``amp`` None = on for CUDA only."""
    return device.type == "cuda" if amp is None else bool(amp)


def autocast(device: torch.device, enabled: bool):
    """The bf16 autocast context of ``device`` (a no-op context when not enabled)."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)


# ---------------------------------------------------------------------------------------------- distributed

@dataclass
class Distributed:
    """This process's place in a DDP job (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def setup(cls, device: str | None) -> "Distributed":
        """Join the process group described by torchrun's environment (WORLD_SIZE, RANK, LOCAL_RANK)."""
        import torch.distributed as dist

        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        owns = False
        if not dist.is_initialized():
            use_cuda = resolve_device(device, local).type == "cuda"
            dist.init_process_group(backend="nccl" if use_cuda else "gloo")
            owns = True
        return cls(rank=rank, world_size=world, local_rank=local, owns_group=owns)

    def wrap(self, model: nn.Module, device: torch.device, find_unused_parameters: bool = False) -> nn.Module:
        """``model`` in DistributedDataParallel when distributed, else unchanged."""
        if not self.enabled:
            return model
        from torch.nn.parallel import DistributedDataParallel as DDP

        return DDP(model, device_ids=[device.index] if device.type == "cuda" else None,
                   find_unused_parameters=find_unused_parameters)

    def average_gradients(self, parameters) -> None:
        """All-reduce (mean) the gradients of ``parameters`` over the processes (for a module called
        several times per step, where DDP's hooks would fire more than once)."""
        if not self.enabled:
            return
        import torch.distributed as dist

        for p in parameters:
            if p.grad is not None:
                dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
                p.grad.div_(self.world_size)

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every process when ``flag`` is True on any."""
        if not self.enabled:
            return flag
        import torch.distributed as dist

        t = torch.tensor([1.0 if flag else 0.0], device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def barrier(self) -> None:
        if self.enabled:
            import torch.distributed as dist
            dist.barrier()

    def close(self) -> None:
        if self.owns_group:
            import torch.distributed as dist
            dist.destroy_process_group()


# ---------------------------------------------------------------------------------------------- checkpoint files

def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename over it (a kill leaves the old file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def checkpoint_header(kind: str) -> dict[str, str]:
    """The fields that open every checkpoint dict: ``{"format": ..., "kind": kind}``."""
    return {"format": CHECKPOINT_FORMAT, "kind": kind}


def load_checkpoint_file(path: str | Path, kind: str, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint of the given ``kind`` with ``weights_only=True``.

    Raises:
        FileNotFoundError: no file there.
        ValueError: naming the file, when it is not a readable checkpoint of this project or holds
            another kind (e.g. a policy given where a world model is expected).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:                                     # corrupt or not a torch file
        raise ValueError(f"{path}: not a readable checkpoint ({exc})") from exc
    if not isinstance(obj, dict) or obj.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a ppuu checkpoint (expected format {CHECKPOINT_FORMAT!r})")
    if obj.get("kind") != kind:
        raise ValueError(f"{path}: a {obj.get('kind')!r} checkpoint, expected a {kind!r} checkpoint")
    return obj


def copy_matching(model: nn.Module, state: dict[str, Tensor]) -> tuple[list[str], list[str]]:
    """Copy every tensor of ``state`` whose name and shape match one of ``model``'s (warm start).

    Returns:
        (copied names, names of ``model`` left at their initial values).
    """
    own = model.state_dict()
    copied = [k for k, v in state.items() if k in own and own[k].shape == v.shape]
    with torch.no_grad():
        for k in copied:
            own[k].copy_(state[k])
    return copied, sorted(set(own) - set(copied))


# ---------------------------------------------------------------------------------------------- randomness

def capture_rng_state() -> dict:
    """The torch, Python, NumPy (and CUDA) random states, as tensors and plain values."""
    _, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]),
             "numpy": torch.from_numpy(keys.astype(np.int64)), "numpy_rest": [int(pos), int(has_gauss), float(gauss)]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    """Set every random generator back to a state from :func:`capture_rng_state`."""
    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(int(v) for v in state["python"]), None))
    pos, has_gauss, gauss = state["numpy_rest"]
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), int(pos), int(has_gauss), float(gauss)))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    """Seed torch (every device), NumPy's global generator and Python's ``random``."""
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


# ---------------------------------------------------------------------------------------------- metrics

class MetricsLog:
    """``metrics.csv`` of a run (and TensorBoard events when ``tensorboard`` is installed).

    On resume the CSV is rewritten with the rows up to ``resume_step`` only, so a run killed
    after a row but before its checkpoint does not log that step twice.

    Args:
        run_dir: the run folder.
        columns: CSV columns, ``"step"`` first.
        resume_step: the step the run resumes from (0 for a new run).
        enabled: False on every process but rank 0.
    """

    def __init__(self, run_dir: Path, columns: Sequence[str], resume_step: int, enabled: bool):
        self.enabled = enabled
        self.columns = tuple(columns)
        self.path = Path(run_dir) / "metrics.csv"
        self.tb = None
        if not enabled:
            return
        rows = []
        if resume_step > 0 and self.path.is_file():
            with open(self.path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if r.get("step") and int(r["step"]) <= resume_step]
        tmp = self.path.with_name(".metrics.csv.tmp")
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, self.columns)
            writer.writeheader()
            writer.writerows({k: r.get(k, "") for k in self.columns} for r in rows)
        os.replace(tmp, self.path)
        self.file = open(self.path, "a", newline="")
        self.writer = csv.DictWriter(self.file, self.columns)
        try:
            from torch.utils.tensorboard import SummaryWriter
            self.tb = SummaryWriter(str(Path(run_dir) / "tensorboard"), purge_step=resume_step + 1)
        except Exception:                                        # tensorboard not installed
            self.tb = None

    def write(self, row: dict[str, Any]) -> None:
        """One row (missing columns left empty; floats to 6 significant digits)."""
        if not self.enabled:
            return
        self.writer.writerow({k: (f"{row[k]:.6g}" if isinstance(row.get(k), float) else row.get(k, ""))
                              for k in self.columns})
        self.file.flush()
        if self.tb is not None:
            for k, v in row.items():
                if k != "step" and isinstance(v, (int, float)):
                    self.tb.add_scalar(k, v, row["step"])

    def close(self) -> None:
        if self.enabled:
            self.file.close()
            if self.tb is not None:
                self.tb.close()
