"""GRPO steps/s of the tiny model at 1 and 2 (or more) processes on the CPU: the data-parallel path's overhead.

Usage::

    python bench/scaling.py [--procs 1 2] [--size 1m] [--steps 5] [--warmup 1] [--group-size 8]
                            [--prompts 2] [--completion-length 32] [--threads 1]
                            [--out bench/results/scaling.json]

Each process count is a real run of the command line: one process is a plain `vrft train`; N > 1 is
`accelerate launch --config_file configs/accelerate/ddp_1x8.yaml --num_processes N -m visual_rft.cli train`
(gloo on a CPU). Each rank takes `--prompts` prompts a step (weak scaling: the global batch is N x prompts),
samples `--group-size` completions each, scores them (cls + format), takes the reference pass and one
AdamW step. A step's time is the slowest rank's rollout + reward + update time (metrics.jsonl's time/*,
which the ranks reduce by their maximum: the all-reduce sits in the update), averaged over the steps after
`--warmup`; the JSON also gives prompts/s (N x prompts / step time) and the whole command's wall time
(start-up and model loading included).

With `--threads 1` each process uses one core: on 2 cores, 2 processes can at best double the prompts/s.
Run it on a quiet machine; the JSON records the load average at the start and the end.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from visual_rft.data.jsonl import write_samples  # noqa: E402
from visual_rft.models.tiny import write_tiny  # noqa: E402
from visual_rft.report.machine import machine  # noqa: E402
from visual_rft.train.distributed import free_port  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DDP = ROOT / "configs" / "accelerate" / "ddp_1x8.yaml"


def make_samples(root: Path, px: int, n: int):
    """grpo_step.py's samples: coloured circles with a classification question."""
    spec = importlib.util.spec_from_file_location("grpo_step", Path(__file__).with_name("grpo_step.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make_samples(root, px, n)


def command(procs: int) -> list[str]:
    """`vrft train` as one process, or under accelerate launch with `procs` processes."""
    if procs == 1:
        return [sys.executable, "-m", "visual_rft.cli", "train"]
    accelerate = str(Path(sys.executable).parent / "accelerate")
    return [
        accelerate,
        "launch",
        "--config_file",
        str(DDP),
        "--num_processes",
        str(procs),
        "--main_process_port",
        str(free_port()),
        "-m",
        "visual_rft.cli",
        "train",
    ]


def run_once(procs: int, model_dir: Path, data: Path, out: Path, args) -> dict:
    overrides = [
        f"model.path={model_dir}",
        f"data.train={data}",
        f"run.output_dir={out}",
        f"run.steps={args.warmup + args.steps}",
        "run.save_every=0",
        "run.sample_every=0",
        "run.tensorboard=false",
        "run.progress=false",
        f"grpo.group_size={args.group_size}",
        f"grpo.prompts_per_step={args.prompts}",
        f"grpo.max_completion_length={args.completion_length}",
        "optim.lr=1e-6",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "OMP_WAIT_POLICY": "PASSIVE"}
    t0 = time.perf_counter()
    done = subprocess.run([*command(procs), *overrides], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        # the ranks' errors come before the launcher's summary, which alone fills a few thousand characters
        raise RuntimeError(f"{procs} process(es) failed:\n{done.stderr[-12000:]}")
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()][args.warmup :]
    step_s = sum(r["time/rollout"] + r["time/reward"] + r["time/update"] for r in rows) / len(rows)
    return {
        "procs": procs,
        "global_prompts_per_step": procs * args.prompts,
        "step_s": step_s,
        "steps_per_s": 1 / step_s,
        "prompts_per_s": procs * args.prompts / step_s,
        "completion_length": sum(r["completion/length"] for r in rows) / len(rows),
        "wall_s": wall,
    }


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    p.add_argument("--size", default="1m", choices=["1m", "5m", "20m"])
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--group-size", type=int, default=8)
    p.add_argument("--prompts", type=int, default=2, help="prompts per rank per step")
    p.add_argument("--completion-length", type=int, default=32)
    p.add_argument("--px", type=int, default=112)
    p.add_argument("--threads", type=int, default=1, help="torch threads of each process")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "scaling.json")
    args = p.parse_args(argv)
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model_dir = write_tiny(tmp / "tiny", "qwen2_5_vl", args.size, seed=0)
        (tmp / "img").mkdir()
        data = tmp / "train.jsonl"
        write_samples(data, make_samples(tmp / "img", args.px, 16))
        results = [run_once(n, model_dir, data, tmp / f"run-{n}", args) for n in args.procs]
    report = {
        "bench": "scaling",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine("transformers", "accelerate"),
        "load_average": {"start": load_start, "end": os.getloadavg()},
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    for r in results:
        print(f"{r['procs']} process(es): {r['steps_per_s']:.3f} steps/s, {r['prompts_per_s']:.2f} prompts/s")
    return report


if __name__ == "__main__":
    main()
