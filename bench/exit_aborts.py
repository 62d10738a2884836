"""How often a two-process gloo launch aborts at exit, with and without the project's settle at exit.

Usage::

    python bench/exit_aborts.py [--runs 100] [--procs 2] [--load 0] [--out bench/results/exit_aborts.json]

Each run is `python -m torch.distributed.run --nproc_per_node 2 bench/exit_aborts.py --worker MODE` on a free
port: every rank joins the world, trains a small MLP under DistributedDataParallel for 20 steps (an all-reduce a
step beside the gradients'), meets the others at a barrier and returns. The modes alternate run by run:

- `bare`: the world joined through accelerate's `PartialState` and left alive at exit (what `vrft train|sft`
  did before `settle_at_exit`);
- `margin`: that join plus a fixed 0.2 s wait at exit (the project's `settle_at_exit` until 2026-12-07);
- `join_world`: the world joined through `visual_rft.train.distributed.join_world`, whose atexit handler
  (`settle_at_exit`) waits until gloo's worker threads are seen asleep before the interpreter's teardown.

`--load N` keeps N busy-looping processes running beside the launches, as a loaded CI machine would.

A run fails when the launch's exit code is not 0; the JSON counts the failures per mode and keeps the first
line naming each failure's cause ("terminate called without an active exception": a gloo thread outlived the
interpreter, SIGABRT). Each rank takes one thread; about 4 s a launch here.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.distributed as dist
from accelerate import PartialState

from visual_rft.report.machine import machine
from visual_rft.train.distributed import free_port, join_world

MODES = ("bare", "margin", "join_world")


def worker(mode: str) -> None:
    """One rank's job: join, 20 DDP steps with an all-reduce each, a barrier, return."""
    torch.set_num_threads(1)
    if mode in ("bare", "margin"):
        PartialState(cpu=True)
        if mode == "margin":
            atexit.register(time.sleep, 0.2)
    else:
        join_world("cpu")
    torch.manual_seed(dist.get_rank())
    model = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 64))
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.AdamW(ddp.parameters())
    for _ in range(20):
        loss = ddp(torch.randn(8, 64)).pow(2).mean()  # (8, 64) -> scalar
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        total = torch.tensor([loss.item()])  # (1,)
        dist.all_reduce(total)
    dist.barrier()


def launch(mode: str, procs: int) -> tuple[int, str]:
    """One launch of `procs` ranks in `mode`: its exit code and the first line naming a failure."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(procs)]
    cmd += ["--master_port", str(free_port()), __file__, "--worker", mode]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    cause = next(
        (
            line
            for line in done.stderr.splitlines()
            if "terminate" in line or "Error" in line or "abort" in line
        ),
        "",
    )
    return done.returncode, cause


def run_all(runs: int, procs: int) -> dict[str, list[dict]]:
    """`runs` launches of each mode, alternating: the failures per mode."""
    failed = {mode: [] for mode in MODES}
    for i in range(runs):
        for mode in MODES:
            code, cause = launch(mode, procs)
            if code != 0:
                failed[mode].append({"run": i, "exit_code": code, "cause": cause})
        print(f"{i + 1}/{runs}: " + ", ".join(f"{m} {len(f)} failed" for m, f in failed.items()), flush=True)
    return failed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=100, help="launches per mode (alternating)")
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument(
        "--load", type=int, default=0, help="busy-looping processes kept running beside the launches"
    )
    ap.add_argument("--out", type=Path, default=Path("bench/results/exit_aborts.json"))
    ap.add_argument("--worker", choices=MODES, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker)
        return
    start, load = time.time(), os.getloadavg()[0]
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.load)]
    try:
        failed = run_all(args.runs, args.procs)
    finally:
        for hog in hogs:
            hog.kill()
    result = {
        "runs_per_mode": args.runs,
        "procs": args.procs,
        "load_procs": args.load,
        "failed": {mode: len(f) for mode, f in failed.items()},
        "failures": failed,
        "wall_s": round(time.time() - start, 1),
        "load_start": load,
        "load_end": os.getloadavg()[0],
        "machine": machine(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["failed"]))


if __name__ == "__main__":
    main()
