"""GRPO step time: our trainer against TRL's GRPOTrainer (trl 1.16) at identical settings, in one run.

Usage::

    python bench/grpo_step.py [--size 5m] [--image-sizes 112 224 448] [--group-sizes 8 16] [--prompts 2]
                              [--completion-length 64] [--beta 0.04] [--warmup 1] [--steps 3]
                              [--repeats 2] [--threads 2] [--out bench/results/grpo_step.json]

With 2 torch threads on 2 cores, any other busy process makes OpenMP's spinning threads 10-20x slower;
run it on a quiet machine (the JSON records the load), with ``OMP_WAIT_POLICY=PASSIVE``, or ``--threads 1``.

The workload, the same for both: the tiny Qwen2.5-VL model (random weights, built on the fly), fp32 on the
CPU; each step takes ``--prompts`` classification prompts, each with one square image of the given size,
samples ``--group-size`` completions per prompt at temperature 1, scores them with the classification
rewards (cls + format, ours through TRL's adapter for TRL), computes the reference log-probs (beta > 0, a
separate frozen copy for both), and takes one AdamW step (mu = 1, lr 1e-6, grad clip 1.0). Every completion
is exactly ``--completion-length`` tokens in both trainers: TRL generates with ``min_new_tokens`` equal to
``max_new_tokens`` (its ``generation_kwargs``), and ours is given an end-of-turn id that never occurs.

Ours: `visual_rft.rl.trainer.GRPOTrainer.step` (images and prompt prefilled once per group, the KV cache
expanded to G rows; the log-prob passes run each prompt once too and only the completion tokens per row),
and the same trainer with ``model.share_prefix=false`` (the log-prob passes run every row's prompt again:
the code before prefix sharing), so one run measures the change: the whole step, and inside it the
reference pass (``reference_logprobs``), the policy's forward and backward (``policy_forward_backward``:
the update's ``logprobs`` call and ``backward``) and the whole update (``update``: those, clipping and
AdamW) of both. TRL: `GRPOTrainer.train()` with
``max_steps = warmup + steps``; a step is the time between consecutive ``on_step_end`` callbacks (data
loading, generation, rewards, reference pass, loss, backward and the optimizer step: the whole step).
Every (G, image size) pair runs each trainer ``--repeats`` times, the three taking turns, and the best
repeat (lowest mean step time) is kept: on a shared machine other jobs' load only ever slows a run down.

Both trainers' vision towers (policy and reference) are wrapped to count calls and the images (rows of
``grid_thw``) they encode per step: ours encodes each image once per pass, TRL G times (it copies the
pixels of each prompt to each of its G completions).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from visual_rft.config import GRPOConfig as OurGRPOConfig  # noqa: E402
from visual_rft.config import ModelConfig, OptimConfig, RunConfig, TrainConfig  # noqa: E402
from visual_rft.data.types import ClassTarget, Sample  # noqa: E402
from visual_rft.models.forward import core_model  # noqa: E402
from visual_rft.models.loading import load_model, load_processor  # noqa: E402
from visual_rft.models.tiny import write_tiny  # noqa: E402
from visual_rft.rl.trainer import GRPOTrainer as OurGRPOTrainer  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from visual_rft.report.machine import machine  # noqa: E402

NEVER = -1
"""An end-of-turn id no token has: our rollout then always samples the full completion length."""


def load_trl_setup():
    spec = importlib.util.spec_from_file_location("trl_setup", Path(__file__).with_name("trl_setup.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_samples(root: Path, px: int, prompts: int) -> list[Sample]:
    """`prompts` square images of `px` pixels, each a coloured circle, with a classification question."""
    colours = ["red", "blue", "green", "orange"]
    samples = []
    for i in range(prompts):
        colour = colours[i % len(colours)]
        im = Image.new("RGB", (px, px), "white")
        ImageDraw.Draw(im).ellipse((px // 8, px // 6, px * 5 // 8, px * 2 // 3), fill=colour)
        path = root / f"{px}_{i}.png"
        im.save(path)
        samples.append(
            Sample(
                f"{px}_{i}",
                [str(path)],
                "classification",
                "What colour is the circle?",
                ClassTarget(colour),
                px,
                px,
            )
        )
    return samples


class VisionCounter:
    """Counts vision-tower calls and the images (rows of grid_thw) they encode, over the models it wraps."""

    def __init__(self):
        self.calls = 0
        self.images = 0

    def wrap(self, model) -> None:
        visual = core_model(model).model.visual
        forward = visual.forward

        def counted(hidden_states, grid_thw=None, **kwargs):
            self.calls += 1
            self.images += int(grid_thw.shape[0])
            return forward(hidden_states, grid_thw=grid_thw, **kwargs)

        visual.forward = counted

    def take(self) -> tuple[int, int]:
        out = (self.calls, self.images)
        self.calls = self.images = 0
        return out


class PartClock:
    """Seconds spent in wrapped methods of a trainer, per name, since the last `take`."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    def wrap(self, obj, name: str) -> None:
        method = getattr(obj, name)

        def timed(*a, **kw):
            t0 = time.perf_counter()
            out = method(*a, **kw)
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0
            return out

        setattr(obj, name, timed)

    def take(self) -> dict[str, float]:
        out, self.seconds = self.seconds, {}
        return out


def run_ours(model_dir: Path, samples, args, out_dir: Path, group_size: int, share_prefix: bool) -> dict:
    cfg = TrainConfig(
        model=ModelConfig(path=str(model_dir), dtype="fp32", device="cpu", share_prefix=share_prefix),
        optim=OptimConfig(lr=1e-6, max_grad_norm=1.0),
        grpo=OurGRPOConfig(
            group_size=group_size,
            prompts_per_step=args.prompts,
            temperature=1.0,
            max_completion_length=args.completion_length,
            beta=args.beta,
            mu=1,
        ),
        run=RunConfig(
            output_dir=str(out_dir), steps=args.warmup + args.steps, tensorboard=False, progress=False
        ),
    )
    trainer = OurGRPOTrainer(cfg, samples=samples)
    trainer.eos_ids = [NEVER]
    counter = VisionCounter()
    counter.wrap(trainer.model)
    if trainer.reference is not None:
        counter.wrap(trainer.reference)
    clock = PartClock()
    clock.wrap(trainer, "reference_logprobs")
    clock.wrap(trainer, "update")
    clock.wrap(trainer, "logprobs")  # the reference's pass and the policy's
    clock.wrap(trainer.precision, "backward")
    trainer.model.train()
    times, vision, parts, lengths = [], [], [], []
    for step in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        metrics = trainer.step(step).metrics
        dt = time.perf_counter() - t0
        calls, inside = counter.take(), clock.take()
        policy_forward = inside.pop("logprobs") - inside.get("reference_logprobs", 0.0)
        inside["policy_forward_backward"] = policy_forward + inside.pop("backward")
        if step >= args.warmup:
            times.append(dt)
            vision.append(calls)
            parts.append(
                {**{k: metrics[k] for k in ("time/rollout", "time/reward", "time/update")}, **inside}
            )
            lengths.append(metrics["completion/length"])
    return {"step_s": times, "vision": vision, "parts": parts, "completion_length": lengths}


def run_trl(model_dir: Path, samples, args, out_dir: Path, trl_setup, group_size: int) -> dict:
    model, processor = load_model(model_dir, dtype="fp32", device="cpu"), load_processor(model_dir)
    trainer = trl_setup.classification_trainer(
        model,
        processor,
        samples,
        out_dir,
        "resized_pixels",
        prompts=args.prompts,
        group_size=group_size,
        completion_length=args.completion_length,
        beta=args.beta,
        steps=args.warmup + args.steps,
    )
    counter = VisionCounter()
    counter.wrap(trainer.model)
    if trainer.ref_model is not None:
        counter.wrap(trainer.ref_model)
    vision = []
    timed = trl_setup.timed_train(trainer, args.warmup, each_step=lambda: vision.append(counter.take()))
    return {**timed, "vision": vision[args.warmup :]}


def summarise(runs: list[dict], images: int) -> dict:
    """Best of the repeats (the lowest mean step time: the one least disturbed by other load)."""
    means = [sum(r["step_s"]) / len(r["step_s"]) for r in runs]
    best = runs[means.index(min(means))]
    vision = [v for r in runs for v in r["vision"]]
    calls = sorted({c for c, _ in vision})
    encoded = sorted({n for _, n in vision})
    out = {
        "step_s": [r["step_s"] for r in runs],
        "repeat_mean_step_s": means,
        "mean_step_s": min(means),
        "steps_per_s": 1.0 / min(means),
        "vision_calls_per_step": calls[0] if len(calls) == 1 else calls,
        "images_encoded_per_step": encoded[0] if len(encoded) == 1 else encoded,
        "encodes_per_image_per_call": (encoded[0] / calls[0] / images)
        if len(encoded) == len(calls) == 1
        else None,
        "completion_length": sorted({n for r in runs for n in r["completion_length"]}),
    }
    if "parts" in best:
        out["mean_parts_s"] = {
            k: sum(p[k] for p in best["parts"]) / len(best["parts"]) for k in best["parts"][0]
        }
    return out


GAINS = ("reference_logprobs", "policy_forward_backward", "update")
"""The parts of our step whose time with and without prefix sharing the rows compare."""


def measure(model_dir: Path, tmp: Path, px: int, group_size: int, args, trl_setup) -> dict:
    """One row: ours (prefix shared), ours per row (the code before) and TRL, taking turns, best repeat."""
    samples = make_samples(tmp, px, args.prompts)
    runs = {"ours": [], "ours_per_row": [], "trl": []}
    for rep in range(args.repeats):  # the trainers take turns, so a burst of load hits all alike
        name = f"{group_size}_{px}_{rep}"
        for key, share in (("ours", True), ("ours_per_row", False)):
            torch.manual_seed(rep)
            runs[key].append(run_ours(model_dir, samples, args, tmp / f"{key}_{name}", group_size, share))
        runs["trl"].append(run_trl(model_dir, samples, args, tmp / f"trl_{name}", trl_setup, group_size))
    row = {
        "group_size": group_size,
        "image_px": px,
        **{k: summarise(v, args.prompts) for k, v in runs.items()},
    }
    ours, before, trl = row["ours"], row["ours_per_row"], row["trl"]
    row["speedup"] = ours["steps_per_s"] / trl["steps_per_s"]
    row["speedup_per_row"] = before["steps_per_s"] / trl["steps_per_s"]
    row["sharing_gain"] = {  # per-row time / shared time, for the whole step and the log-prob passes
        "step": before["mean_step_s"] / ours["mean_step_s"],
        **{k: before["mean_parts_s"][k] / ours["mean_parts_s"][k] for k in GAINS},
    }
    lengths = [ours["completion_length"], before["completion_length"], trl["completion_length"]]
    row["same_completion_length"] = all(n == [args.completion_length] for n in lengths)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", default="5m", help="tiny model size (1m, 5m, 20m)")
    parser.add_argument("--image-sizes", type=int, nargs="+", default=[112, 224, 448])
    parser.add_argument("--group-sizes", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--prompts", type=int, default=2, help="prompts per step")
    parser.add_argument("--completion-length", type=int, default=64)
    parser.add_argument("--beta", type=float, default=0.04)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2, help="runs of each trainer; the best is kept")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--out", type=Path, default=Path("bench/results/grpo_step.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    trl_setup = load_trl_setup()

    rows = []
    load = [os.getloadavg()[0]] if hasattr(os, "getloadavg") else []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model_dir = write_tiny(tmp / f"qwen2_5_vl-{args.size}", "qwen2_5_vl", args.size, seed=0)
        for group_size in args.group_sizes:
            for px in args.image_sizes:
                rows.append(measure(model_dir, tmp, px, group_size, args, trl_setup))
                if hasattr(os, "getloadavg"):
                    load.append(os.getloadavg()[0])
                r = rows[-1]
                print(
                    f"G={group_size} {px} px: ours {r['ours']['mean_step_s']:.2f} s/step, per row "
                    f"{r['ours_per_row']['mean_step_s']:.2f}, TRL {r['trl']['mean_step_s']:.2f}",
                    file=sys.stderr,
                    flush=True,
                )

    result = {
        "benchmark": "grpo_step",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "python bench/grpo_step.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine("transformers", "trl"),
        "load_avg_1min": load,
        "workload": {
            "model": f"tiny qwen2_5_vl {args.size}",
            "dtype": "fp32",
            "device": "cpu",
            "group_sizes": args.group_sizes,
            "prompts_per_step": args.prompts,
            "completion_tokens": args.completion_length,
            "beta": args.beta,
            "mu": 1,
            "warmup_steps": args.warmup,
            "timed_steps": args.steps,
            "repeats": args.repeats,
            "torch_threads": args.threads,
            "trl_loss_type": "dapo",
            "our_aggregation": "token",
        },
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if load:
        print(f"machine load (1 min) {min(load):.2f}-{max(load):.2f}, torch threads {args.threads}")
    print(table(rows))
    return 0


def table(rows: list[dict]) -> str:
    """The markdown rows of BENCHMARKS.md: steps/s of the three, and what sharing the prefix gained."""
    lines = [
        "| G | image | ours steps/s | ours per row steps/s | TRL steps/s | ours / TRL | per row / TRL "
        "| sharing: step, reference, policy fwd+bwd, update | vision calls/step x images/call (ours; TRL) |",
        "|---|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in rows:
        o, b, t, gain = r["ours"], r["ours_per_row"], r["trl"], r["sharing_gain"]
        per_call = [
            f"{x['vision_calls_per_step']} x {x['images_encoded_per_step'] // x['vision_calls_per_step']}"
            if isinstance(x["vision_calls_per_step"], int) and isinstance(x["images_encoded_per_step"], int)
            else f"{x['vision_calls_per_step']} calls, {x['images_encoded_per_step']} images"
            for x in (o, t)
        ]
        lines.append(
            f"| {r['group_size']} | {r['image_px']} px | {o['steps_per_s']:.3f} | {b['steps_per_s']:.3f} "
            f"| {t['steps_per_s']:.3f} | {r['speedup']:.2f}x | {r['speedup_per_row']:.2f}x "
            f"| {', '.join(f'{gain[k]:.2f}x' for k in ('step', *GAINS))} "
            f"| {per_call[0]}; {per_call[1]} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
