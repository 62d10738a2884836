"""The staged base at two model sizes side by side: `staged_base.py` runs launched together on one machine (a
GPU's), from the same world and recipe, each writing its result as it ends, all stopped at a deadline.

    python bench/base_sizes.py --out runs/sizes --deadline 540 --vision 5m=runs/pos/vision
    python bench/base_sizes.py --out runs/sizes_cpu --reduced --workers 0   # every stage a few steps (the test)

`RUNS` holds the runs: the default recipe at 5m and at 20m, and 20m with the position loss read where its
first held layer reads (layer 4 of 6, as layer 2 of 4 in the 5m; RESULTS.md section 16). A run is
`staged_base.py --out OUT/NAME --test-seed 23 --dtype fp32 OVERRIDES` (fp32 training and evaluation: the
numbers compare with the CPU's), then `grounding_hits.py` on its locate stage's last model (`single`, `pair`,
`name`, 100 queries each). Runs of one size share one stage 1: a folder given with --vision SIZE=DIR (a
finished `vision/` stage: model/ and done.json), else one trained here first (`vrft world pretrain` with no
SFT steps, into OUT/stage1-SIZE); a run starts once its size's stage 1 is there. At --deadline seconds
whatever still runs is stopped (its process group killed) and reported as such.

Writes OUT/base_sizes.json, rewritten as runs end: the machine, and per run its overrides, state (done,
failed, stopped at the deadline, not started), seconds, staged_base's result.json and the hits table.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from visual_rft.data.files import atomic_path
from visual_rft.report.machine import machine

BENCH = Path(__file__).resolve().parent
FP32 = [f"{stage}.run.precision=fp32" for stage in ("locate", "align", "joint")]
RUNS = {
    "5m": ["size=5m"],
    "20m": ["size=20m"],
    "20m-position": ["size=20m", "binding.position_weight=1", "binding.position_layer=4"],
}
"""name -> PretrainConfig overrides (beside FP32); the first is the size."""
REDUCED = [
    "n_per_task=12",
    "vision.steps=2",
    "vision.batch_size=4",
    *[
        f"{stage}.run.{key}={value}"
        for stage in ("locate", "align", "joint")
        for key, value in (("steps", 2), ("save_every", 2))
    ],
    *[f"{stage}.sft.batch_size=4" for stage in ("locate", "align", "joint")],
]
"""--reduced: every stage two steps of a few samples (the script's CPU test)."""
SEED = 23
"""The held-out world's seed (the pre-training world's is 0)."""


def stage1_command(out: Path, size: str, reduced: bool, workers: int) -> list[str]:
    """`vrft world pretrain` with no SFT steps: the world, the initial model and stage 1 alone (its scenes
    drawn ahead by `workers` processes)."""
    steps = [f"{stage}.run.steps=0" for stage in ("locate", "align", "joint")]
    extra = [r for r in REDUCED if r.startswith(("vision.", "n_per_task"))] if reduced else []
    extra.append(f"vision.workers={workers}")
    return [
        sys.executable,
        "-m",
        "visual_rft.cli",
        "world",
        "pretrain",
        f"out_dir={out}",
        f"size={size}",
        "progress=false",
        *steps,
        *extra,
    ]


def run_command(out: Path, overrides: list[str], reduced: bool) -> str:
    """The run's shell command: staged_base, then grounding_hits on the locate stage's last model."""
    n = 3 if reduced else 100
    locate = out / "locate" / f"checkpoint-{2 if reduced else 1500}" / "model"
    base = [
        sys.executable,
        str(BENCH / "staged_base.py"),
        "--out",
        str(out),
        "--test-seed",
        str(SEED),
        "--n-test",
        str(n),
        "--dtype",
        "fp32",
        *overrides,
        *FP32,
        *(REDUCED if reduced else []),
    ]
    hits = [
        sys.executable,
        str(BENCH / "grounding_hits.py"),
        "--out",
        str(out / "hits"),
        "--models",
        str(locate),
        "--kinds",
        "single",
        "pair",
        "name",
        "--n",
        str(n),
        "--seed",
        str(SEED),
        "--dtype",
        "fp32",
    ]
    return shlex.join(base) + " && " + shlex.join(hits)  # quoted: overrides may hold spaces or brackets


def launch(command: list[str] | str, log: Path, threads: int) -> subprocess.Popen:
    """A process in a session of its own (so that the deadline can stop all of it), output to `log`."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}
    with open(log, "w") as f:
        return subprocess.Popen(
            command,
            shell=isinstance(command, str),
            stdout=f,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            cwd=BENCH.parent,
        )


def report(out: Path, runs: dict) -> None:
    rows = {}
    for name, r in runs.items():
        result = out / name / "result.json"
        log = out / f"{name}.log"
        hits = [line for line in log.read_text().splitlines() if line.startswith("|")] if log.exists() else []
        rows[name] = {
            **{k: r[k] for k in ("overrides", "state", "seconds")},
            "result": json.loads(result.read_text()) if result.exists() else None,
            "hits": hits,
        }
    with atomic_path(out / "base_sizes.json") as tmp:
        tmp.write_text(json.dumps({"machine": machine("transformers"), "runs": rows}, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--deadline", type=float, default=540.0, help="seconds; then whatever runs is stopped"
    )
    parser.add_argument("--vision", nargs="*", default=[], help="SIZE=DIR: a finished stage 1 for that size")
    parser.add_argument("--only", nargs="*", choices=sorted(RUNS), help="these runs only")
    parser.add_argument("--reduced", action="store_true", help="every stage two steps (the CPU test)")
    parser.add_argument(
        "--workers", type=int, default=4, help="processes drawing each stage 1's scenes ahead"
    )
    args = parser.parse_args()
    given = dict(v.split("=", 1) for v in args.vision)
    for size, folder in given.items():
        if not (Path(folder) / "done.json").exists():
            parser.error(f"--vision {size}={folder}: no done.json there (not a finished stage 1)")
    args.out.mkdir(parents=True, exist_ok=True)
    names = args.only or list(RUNS)
    runs = {
        n: {"overrides": RUNS[n], "size": RUNS[n][0].split("=")[1], "state": "not started", "seconds": None}
        for n in names
    }
    sizes = {r["size"] for r in runs.values()}
    threads = max(1, (os.cpu_count() or 1) // len(runs))
    ready = {s: Path(given[s]) for s in sizes if s in given}  # size -> its finished stage-1 folder
    stage1 = {
        s: launch(
            stage1_command(args.out / f"stage1-{s}", s, args.reduced, args.workers),
            args.out / f"stage1-{s}.log",
            threads,
        )
        for s in sizes - set(ready)
    }
    jobs, t0 = {}, time.monotonic()
    while True:
        for size, p in list(stage1.items()):
            if p.poll() is not None:
                del stage1[size]
                if p.returncode == 0:
                    ready[size] = args.out / f"stage1-{size}" / "vision"
                else:  # the runs of this size cannot start
                    for r in runs.values():
                        r["state"] = "stage 1 failed" if r["size"] == size else r["state"]
        for name, r in runs.items():
            if r["state"] == "not started" and r["size"] in ready:
                shutil.copytree(ready[r["size"]], args.out / name / "vision", dirs_exist_ok=True)
                command = run_command(args.out / name, r["overrides"], args.reduced)
                jobs[name] = (launch(command, args.out / f"{name}.log", threads), time.monotonic())
                r["state"] = "running"
        for name, (p, start) in list(jobs.items()):
            if p.poll() is not None:
                del jobs[name]
                runs[name].update(
                    state="done" if p.returncode == 0 else f"failed ({p.returncode})",
                    seconds=round(time.monotonic() - start),
                )
                report(args.out, runs)
        if not jobs and not stage1:
            break
        if time.monotonic() - t0 > args.deadline:
            for name, (p, start) in jobs.items():
                os.killpg(p.pid, signal.SIGKILL)
                runs[name].update(state="stopped at the deadline", seconds=round(time.monotonic() - start))
            for p in stage1.values():
                os.killpg(p.pid, signal.SIGKILL)
            break
        time.sleep(1)
    report(args.out, runs)
    print(json.dumps({n: {"state": r["state"], "seconds": r["seconds"]} for n, r in runs.items()}))


if __name__ == "__main__":
    main()
