"""Several processes (`accelerate launch --num_processes N -m visual_rft.cli train|sft ...`): who this
process is, the data-parallel wrapper of the pass that trains, and the few reductions the trainers need.

accelerate launches the processes and sets up torch.distributed (gloo on a CPU, NCCL on GPUs); torch's
`DistributedDataParallel` averages the gradients. With one process (a plain `vrft train`) there is no
process group, no wrapper, and every function here returns its input: the run is exactly what it was.

What each rank does (docs/architecture.md, "Several processes"):
- its own share of the step's global batch (`data_order.rank_indices`), whole groups only;
- the loss of its share normalised by the GLOBAL totals (tokens or rows of the whole global batch), so the
  summed gradients equal those of one process over the global batch; DDP averages over ranks, so each
  rank's loss is multiplied by the world size before backward;
- metrics reduced over ranks before logging; files written by rank 0 only.
"""

from __future__ import annotations

import json
import os
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from accelerate import PartialState

from visual_rft.models.forward import completion_logprobs

STRATEGIES = ("ddp",)

SUMMED = ("loss", "loss/first", "loss/last", "groups/dropped", "answer_tokens")
"""Metrics that add up over ranks (each rank's loss is its share of the global batch's loss)."""
MAXED = ("time/", "memory/")
"""Metric prefixes whose reduction is the slowest / largest rank; every other metric is the ranks' mean."""


@dataclass(frozen=True)
class World:
    rank: int = 0
    """This process's index, 0 .. size - 1."""
    size: int = 1
    """Number of processes."""
    device: torch.device | None = None
    """This rank's device when launched on several (cuda:LOCAL_RANK); None: model.device decides."""

    @property
    def main(self) -> bool:
        """Rank 0: the one that writes logs, samples and checkpoints."""
        return self.rank == 0


def join_world(device: str = "auto") -> World:
    """The process group of an `accelerate launch` (or torchrun) with WORLD_SIZE > 1, else a world of one.
    `device` is model.device: cpu (gloo), or auto / cuda (each rank on cuda:LOCAL_RANK, NCCL)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return World()
    cpu = device == "cpu" or (device == "auto" and not torch.cuda.is_available())
    if not cpu and device not in ("auto", "cuda"):
        raise ValueError(
            f"model.device={device}: under several processes each rank takes its own GPU "
            "(cuda:LOCAL_RANK); set model.device=auto or cuda (or cpu)"
        )
    state = PartialState(cpu=cpu)
    return World(state.process_index, state.num_processes, None if cpu else state.device)


def check_strategy(strategy: str) -> None:
    """A sharding setting this code can take, checked before any model loads."""
    if strategy not in STRATEGIES:
        raise ValueError(f"dist.strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")


def check_resume_world(ckpt: Path | None, world: World) -> None:
    """A checkpoint resumes only under the number of processes that wrote it: the per-rank batches, and so
    the data order and the global batch, depend on it (checked before any model loads)."""
    if ckpt is None:
        return
    wrote = json.loads((ckpt / "state.json").read_text()).get("world_size", 1)
    if wrote != world.size:
        raise ValueError(
            f"{ckpt}: written by a run of {wrote} process(es), resumed with {world.size}; resume with "
            f"`accelerate launch --num_processes {wrote}` (each rank's share of the data and the global "
            "batch depend on it), or start a new run folder"
        )


class PolicyPass(torch.nn.Module):
    """The completion log-probabilities of `model` as a module's forward: the pass that trains goes through
    DDP's forward (DDP syncs the gradients of what ran through its forward)."""

    def __init__(self, model, logprobs=completion_logprobs, **kwargs):
        super().__init__()
        self.model = model
        self.logprobs = logprobs
        """The function: `completion_logprobs` (a trainer may name its own module's, for tests to wrap)."""
        self.kwargs = kwargs
        """Its keywords (temperature, chunk_size)."""

    def forward(self, rollout) -> torch.Tensor:
        return self.logprobs(self.model, rollout, **self.kwargs)  # [R, T]


def wrap_for_training(policy_pass: PolicyPass, world: World):
    """DDP around the pass that trains when there are several processes; the pass itself otherwise.
    broadcast_buffers=False: ranks run different numbers of micro-batches, so no collective may sit in a
    forward; the weights start equal (every rank loads the same folder with the same seed)."""
    if world.size == 1:
        return policy_pass
    return torch.nn.parallel.DistributedDataParallel(policy_pass, broadcast_buffers=False)


def gradient_sync(wrapped, last: bool):
    """Context of one micro-batch's backward: gradients are all-reduced on a step's last micro-batch only."""
    if last or not isinstance(wrapped, torch.nn.parallel.DistributedDataParallel):
        return nullcontext()
    return wrapped.no_sync()


def _comm_device(world: World) -> torch.device:
    return world.device if world.device is not None else torch.device("cpu")


def all_sum(value: torch.Tensor, world: World) -> torch.Tensor:
    """The sum of a tensor over ranks (the tensor itself with one process)."""
    if world.size == 1:
        return value
    out = value.detach().clone().to(_comm_device(world))
    dist.all_reduce(out)
    return out.to(value.device)


def reduce_metrics(metrics: dict, world: World) -> dict:
    """Every rank's metrics -> one row: SUMMED keys add up, MAXED prefixes take the largest, the rest the
    mean over the ranks that logged the key (each rank's batch is the same size). A collective: every rank
    calls it at the same steps."""
    if world.size == 1:
        return metrics
    rows = [None] * world.size
    dist.all_gather_object(rows, metrics)
    return combine_metrics(rows)


def combine_metrics(rows: list[dict]) -> dict:
    """The ranks' metric rows as one (reduce_metrics' arithmetic; numbers only)."""
    out = {}
    for key in dict.fromkeys(k for r in rows for k in r):
        vals = [r[key] for r in rows if key in r and isinstance(r[key], (int, float))]
        if not vals:
            continue
        if key in SUMMED:
            out[key] = sum(vals)
        elif key.startswith(MAXED):
            out[key] = max(vals)
        else:
            out[key] = sum(vals) / len(vals)
    return out


def barrier(world: World) -> None:
    if world.size > 1:
        dist.barrier()
