"""Several processes (`accelerate launch --num_processes N -m visual_rft.cli train|sft ...`): who this
process is, the data-parallel wrapper of the pass that trains, and the few reductions the trainers need.

accelerate launches the processes and sets up torch.distributed (gloo on a CPU, NCCL on GPUs); torch's
`DistributedDataParallel` averages the gradients (dist.strategy=ddp), or FSDP2's `fully_shard` shards
parameters, gradients and optimizer state over the ranks (dist.strategy=fsdp2). With one process and ddp
(a plain `vrft train`) there is no process group, no wrapper, and every function here returns its input:
the run is exactly what it was.

What each rank does (docs/architecture.md, "Several processes"):
- its own share of the step's global batch (`data_order.rank_indices`), whole groups only;
- the loss of its share normalised by the GLOBAL totals (tokens or rows of the whole global batch), so the
  summed gradients equal those of one process over the global batch; DDP averages over ranks, so each
  rank's loss is multiplied by the world size before backward;
- metrics reduced over ranks before logging; files written by rank 0 only.
"""

from __future__ import annotations

import atexit
import json
import os
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from accelerate import PartialState
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard
from torch.distributed.tensor import DTensor, distribute_tensor

from visual_rft.models.forward import completion_logprobs, core_model

STRATEGIES = ("auto", "ddp", "fsdp2")
FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)
"""Checkpoints hold whole tensors, whatever the sharding: a checkpoint loads on any strategy."""

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


def join_world(device: str = "auto", strategy: str = "ddp") -> World:
    """The process group of an `accelerate launch` (or torchrun) with WORLD_SIZE > 1, else a world of one
    (fsdp2 still gets a process group of one, so that its sharded path runs on one device).
    `device` is model.device: cpu (gloo), or auto / cuda (each rank on cuda:LOCAL_RANK, NCCL)."""
    cpu = device == "cpu" or (device == "auto" and not torch.cuda.is_available())
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        if strategy == "fsdp2" and not dist.is_initialized():
            dist.init_process_group("gloo" if cpu else "nccl", store=dist.HashStore(), rank=0, world_size=1)
            settle_at_exit()
        return World()
    if not cpu and device not in ("auto", "cuda"):
        raise ValueError(
            f"model.device={device}: under several processes each rank takes its own GPU "
            "(cuda:LOCAL_RANK); set model.device=auto or cuda (or cpu)"
        )
    state = PartialState(cpu=cpu)
    settle_at_exit()
    return World(state.process_index, state.num_processes, None if cpu else state.device)


GLOO_SETTLE_S = 5.0
"""The longest a gloo process waits at exit for gloo's worker threads to go idle (they need milliseconds)."""
GLOO_IDLE_LOOKS = 5
"""Consecutive looks, GLOO_LOOK_S apart, that must find every gloo worker thread asleep before the exit goes on."""
GLOO_LOOK_S = 0.04
"""Seconds between two looks: the wait releases the GIL, which a thread freeing a tensor may be waiting for."""


def settle_at_exit() -> None:
    """At exit, wait until gloo's worker threads have released the last collectives (registered once a
    process, however many trainers join). A worker frees a finished collective's work just after the caller
    has returned from it, and with it the last reference to a tensor that Python has dropped: freeing that
    takes the GIL, and a thread that asks for the GIL once the interpreter is finalizing is ended mid-
    destructor, which aborts the rank ("terminate called without an active exception", SIGABRT:
    pytorch/pytorch#190489) after it trained and saved, failing the launch. destroy_process_group does not
    prevent it: once a DDP wrapper was built, the group's threads outlive it and the wrapper (measured here).
    torch offers no way to wait for the threads' release, so the atexit handler, while the interpreter can
    still lend the GIL, watches them: it goes on once GLOO_IDLE_LOOKS looks in a row found every gloo worker
    thread asleep (0.2 s at the least, GLOO_SETTLE_S at the most). The fixed 0.2 s it replaces aborted 0 of 100
    launches here (0 of 40 beside two busy processes; 15 and 2 without a wait) and yet CI saw a rank abort once
    with it in place: a fixed wait cannot see a worker that is runnable and still waiting for a core
    (`bench/exit_aborts.py`, BENCHMARKS.md)."""
    atexit.unregister(_settle)
    atexit.register(_settle)


def _settle() -> None:
    if not (dist.is_initialized() and dist.get_backend() == "gloo"):
        return
    deadline, idle = time.monotonic() + GLOO_SETTLE_S, 0
    while idle < GLOO_IDLE_LOOKS and time.monotonic() < deadline:
        time.sleep(GLOO_LOOK_S)
        idle = 0 if busy_gloo_threads() else idle + 1  # None (no /proc): the looks are a fixed 0.2 s margin


def busy_gloo_threads() -> int | None:
    """How many of this process's gloo worker threads (`pt_gloo_runloop`) are not asleep: running, waiting
    for a core, or in the kernel. None where /proc does not list a process's threads (not Linux). A thread
    asleep on the GIL also reads as asleep; the wait between looks lends it the GIL."""
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return None
    busy = 0
    for tid in tids:
        try:
            stat = Path(f"/proc/self/task/{tid}/stat").read_text()
        except OSError:  # the thread ended between the listing and the read
            continue
        name, state = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2]
        busy += name == "pt_gloo_runloop" and state != "S"
    return busy


def resolve_strategy(strategy: str, precision: str) -> str:
    """dist.strategy as this launch runs it ("auto": fsdp2 when `accelerate launch` was given an FSDP config,
    else ddp); a setting this code cannot take fails here, before any model loads."""
    if strategy not in STRATEGIES:
        raise ValueError(f"dist.strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    if os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true":  # distributed_type: FSDP
        version = os.environ.get("FSDP_VERSION", "1")
        if version != "2":
            raise ValueError(
                f"the accelerate launch config asks for FSDP version {version}: only FSDP2 is built; set "
                "fsdp_version: 2 in its fsdp_config (configs/accelerate/fsdp2_1x8.yaml)"
            )
        if strategy == "ddp":
            raise ValueError(
                "dist.strategy=ddp, but the accelerate launch config asks for FSDP2: leave dist.strategy at "
                "auto (or fsdp2), or launch with a DDP config (configs/accelerate/ddp_1x8.yaml)"
            )
        strategy = "fsdp2"
    strategy = "ddp" if strategy == "auto" else strategy
    if strategy == "fsdp2" and precision == "fp16-mixed":
        raise ValueError(
            "dist.strategy=fsdp2 with run.precision=fp16-mixed: the gradient scaler's inf/nan check would see "
            "only this rank's shard of the gradients, and the ranks could disagree on skipping a step; use "
            "run.precision=bf16-mixed (or fp32), or dist.strategy=ddp"
        )
    return strategy


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


def shard(pass_: PolicyPass, compute_dtype: torch.dtype | None) -> PolicyPass:
    """FSDP2: every decoder layer and vision block of the model (its `_no_split_modules`) a unit of its own,
    the pass the root (embeddings, head, merger). Parameters stay fp32 (master weights); under bf16-mixed
    they are gathered in bf16 for compute and gradients reduced in fp32."""
    policy = MixedPrecisionPolicy(param_dtype=compute_dtype, reduce_dtype=torch.float32)
    units = set(core_model(pass_.model)._no_split_modules or ())
    for module in pass_.model.modules():
        if type(module).__name__ in units:
            fully_shard(module, mp_policy=policy)
    root = fully_shard(pass_, mp_policy=policy)
    # the root is set up now, not at its first forward: the rollout (which calls the model's parts, not the
    # root) comes first, and FSDP2 would take the first unit it sees as the root
    root._get_fsdp_state()._lazy_init()
    return root


def wrap_for_training(policy_pass: PolicyPass, world: World, strategy: str = "ddp", compute_dtype=None):
    """The pass that trains: sharded (fsdp2, any world size), in DDP (ddp, several processes), or itself.
    DDP's broadcast_buffers=False: ranks run different numbers of micro-batches, so no collective may sit
    in a forward; the weights start equal (every rank loads the same folder with the same seed)."""
    if strategy == "fsdp2":
        return shard(policy_pass, compute_dtype)
    if world.size == 1:
        return policy_pass
    return torch.nn.parallel.DistributedDataParallel(policy_pass, broadcast_buffers=False)


@contextmanager
def gradient_sync(wrapped, last: bool):
    """Context of one micro-batch's backward: gradients are all-reduced (DDP) or reduce-scattered (FSDP2)
    on a step's last micro-batch only."""
    if last:
        yield
    elif isinstance(wrapped, torch.nn.parallel.DistributedDataParallel):
        with wrapped.no_sync():
            yield
    elif isinstance(wrapped, FSDPModule):
        wrapped.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            wrapped.set_requires_gradient_sync(True)
    else:
        yield


def _fsdp_modules(wrapped) -> list:
    return [m for m in wrapped.modules() if isinstance(m, FSDPModule)]


@contextmanager
def gathered(wrapped):
    """The whole model on every rank while it generates (as TRL gathers ZeRO-3 weights for generate): a
    token-by-token rollout calls no collective, so ranks that end their completions at different lengths
    do not wait on each other. Nothing to do unless sharded."""
    modules = _fsdp_modules(wrapped)
    for m in modules:
        m.set_reshard_after_forward(False, recurse=False)
        m.unshard()
    try:
        yield
    finally:
        for m in modules:
            m.reshard()
            m.set_reshard_after_forward(True, recurse=False)


def is_sharded(wrapped) -> bool:
    return isinstance(wrapped, FSDPModule)


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


def free_port() -> int:
    """A TCP port nothing on this machine listens on now, for a launch's rendezvous (`MASTER_PORT`,
    `accelerate launch --main_process_port`), so that launches side by side (tests, `bench/scaling.py`) do
    not share accelerate's default, 29500, whose holder makes a later launch warn and switch to another
    rendezvous of its own."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def barrier(world: World) -> None:
    if world.size > 1:
        dist.barrier()


def full_states(model, optimizer) -> tuple[dict, dict]:
    """The whole model and optimizer state of a sharded model (a collective: every rank calls it; rank 0's
    are whole, the other ranks' are not to be saved), in the format of an unsharded run (a checkpoint
    resumes under either strategy). A tied weight (the head that is the embedding) is kept under its
    first name only, as save_pretrained writes it."""
    weights = get_model_state_dict(model, options=FULL)
    first = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        if first.setdefault(id(p), name) != name:
            weights.pop(name, None)
    state = optimizer.state_dict()  # (its per-parameter dicts are the optimizer's own: copied, not changed)
    state["state"] = {
        i: {k: _whole(v) for k, v in per_param.items()} for i, per_param in state["state"].items()
    }
    return weights, state


def _whole(value):
    """A sharded moment whole, on rank 0 (in CPU memory; None elsewhere), one at a time; the rest as it is."""
    if not isinstance(value, DTensor):
        return value
    whole = value.full_tensor()  # a collective
    return whole.cpu() if dist.get_rank() == 0 else None


def load_full_optimizer_state(optimizer, state: dict) -> None:
    """A whole optimizer state (as `full_states` gives it) into the optimizer of sharded parameters: each
    rank keeps its shard of every moment (a collective)."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for i, per_param in state["state"].items():
        p = params[i]
        if isinstance(p, DTensor):
            for k, v in per_param.items():
                if torch.is_tensor(v) and v.shape == p.shape:
                    per_param[k] = distribute_tensor(v.to(p.device), p.device_mesh, p.placements)
    optimizer.load_state_dict(state)
