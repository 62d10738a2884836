"""Reward throughput: detection completions scored per second, ours against the paper's original code.

Usage::

    python bench/reward_speed.py [--prompts 2500] [--group 8] [--repeats 7] [--out bench/results/reward_speed.json]

The workload: ``--prompts`` ground truths of one to ten boxes (0-1000 coordinates, the released datasets'
solution strings) and ``--group`` sampled completions each, as one GRPO step sees them: a short thinking
block, then the boxes as a Python literal (the paper's format), jittered, with some boxes missed, some
extra and a few answers spread over several lines. Every completion is distinct.

Rows, all single process and pinned to one core, best of ``--repeats``:

- ``ours``: iou_reward + confidence_reward + format_reward on every completion, caches cleared first
  (the confidence reward reuses the parse and the matching of the IoU reward, as in training);
- ``ours <name> (cold)``: one reward alone, caches cleared first;
- ``original``: a faithful re-implementation of Visual-RFT's ``accuracy_reward_iou``,
  ``accuracy_reward_confidence`` and ``format_reward`` (src/virft/src/open_r1/grpo.py; the copy is in
  bench/reward_reference.py), WITHOUT its ``math_verify`` pre-check (the reward logic alone);
- ``original + math_verify``: the same with the pre-check, as the paper ran it, when ``math_verify`` is
  importable (it is not a dependency of this project; measured once, on a subset, as it is slow). To get the
  row without touching your environment: ``pip install --target /tmp/mv math-verify`` then run the script
  with ``PYTHONPATH=/tmp/mv``.

The best of several repeats is kept so that other work on a shared machine does not count against a row.

The script also reports how often ours and the original agree on the IoU reward (they differ by design on
multi-line answers and a few edge cases; see the issue note).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

from visual_rft import rewards
from visual_rft.data import answer as parse
from visual_rft.rewards import detection

sys.path.insert(0, str(Path(__file__).parent))
from reward_reference import (  # noqa: E402  (bench/ is not a package: the script's folder is on the path)
    math_verify_version,
    mv_parse,
    original_accuracy_reward_confidence,
    original_accuracy_reward_iou,
    original_format_reward,
)

# ----------------------------------------------------------------------------------------------------------
# The workload

_THOUGHTS = [
    "I look at the image and search for every instance of the category.",
    "There are several objects; I check each region carefully before giving the boxes.",
    "The object appears near the centre, partly occluded, so I estimate its extent.",
]


def _random_box(rng: random.Random) -> list[int]:
    w, h = rng.randint(20, 400), rng.randint(20, 400)
    x, y = rng.randint(0, 1000 - w), rng.randint(0, 1000 - h)
    return [x, y, x + w, y + h]


def _jitter(box: list[int], rng: random.Random) -> list[int]:
    w, h = box[2] - box[0], box[3] - box[1]
    d = [round(rng.gauss(0, 0.08) * s) for s in (w, h, w, h)]
    x1, y1, x2, y2 = (v + dv for v, dv in zip(box, d))
    return [x1, y1, max(x2, x1 + 1), max(y2, y1 + 1)]


def make_workload(n_prompts: int, group: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """(completions, solutions): ``group`` distinct completions for each of ``n_prompts`` ground truths."""
    rng = random.Random(seed)
    completions, solutions = [], []
    for _ in range(n_prompts):
        truth = [_random_box(rng) for _ in range(rng.randint(1, 10))]
        solution = "<answer>" + str([{"Position": b, "Confidence": 1} for b in truth]) + "</answer>"
        for g in range(group):
            kept = [_jitter(b, rng) for b in truth if rng.random() < 0.85]
            kept += [_random_box(rng) for _ in range(rng.choice((0, 0, 0, 1, 2)))]
            kept = kept[:10] or [_random_box(rng)]
            objects = [{"Position": b, "Confidence": round(rng.uniform(0.3, 1.0), 2)} for b in kept]
            answer = str(objects)
            if rng.random() < 0.1:  # an answer spread over several lines
                answer = "[\n" + ",\n".join(str(o) for o in objects) + "\n]"
            thought = f"{rng.choice(_THOUGHTS)} Sample {g}."
            completions.append(f"<think>{thought}</think>\n<answer>{answer}</answer>")
            solutions.append(solution)
    return completions, solutions


# ----------------------------------------------------------------------------------------------------------
# Timing


def _clear_caches() -> None:
    parse.clear_caches()
    detection.clear_caches()


def _best_time(run, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        _clear_caches()
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def _ours_all(completions, solutions):
    iou, confidence, fmt = rewards.iou_reward, rewards.confidence_reward, rewards.format_reward
    for c, s in zip(completions, solutions):
        iou(c, s)
        confidence(c, s)
        fmt(c)


def _ours_one(reward, completions, solutions):
    for c, s in zip(completions, solutions):
        reward(c, s)


def _original_all(conversations, solutions, use_math_verify=False):
    original_accuracy_reward_iou(conversations, solutions, use_math_verify=use_math_verify)
    original_accuracy_reward_confidence(conversations, solutions, use_math_verify=use_math_verify)
    original_format_reward(conversations)


def _agreement(completions, solutions, conversations) -> dict:
    """How often our IoU reward equals the original's, on single-line answers; means on multi-line ones."""
    _clear_caches()
    ours = [rewards.iou_reward(c, s) for c, s in zip(completions, solutions)]
    theirs = original_accuracy_reward_iou(conversations, solutions)
    multi_line = ["\n" in c.split("<answer>", 1)[1] for c in completions]
    single = [abs(a - b) < 1e-9 for a, b, m in zip(ours, theirs, multi_line) if not m]
    multi_ours = [a for a, m in zip(ours, multi_line) if m]
    multi_theirs = [b for b, m in zip(theirs, multi_line) if m]
    return {
        "single_line_iou_agreement": sum(single) / max(1, len(single)),
        "multi_line_answers": len(multi_ours),
        "multi_line_ours_iou_mean": statistics.fmean(multi_ours) if multi_ours else None,
        "multi_line_original_iou_mean": statistics.fmean(multi_theirs) if multi_theirs else None,
    }


def _machine(pinned: bool) -> str:
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    where = "pinned to one core" if pinned else "not pinned"
    return f"{model}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}, {where}"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=2500, help="ground truths (groups)")
    parser.add_argument("--group", type=int, default=8, help="completions per ground truth")
    parser.add_argument("--repeats", type=int, default=7, help="timed repeats; the best is kept")
    parser.add_argument("--math-verify-subset", type=int, default=800, help="completions for the slow row")
    parser.add_argument("--out", default="bench/results/reward_speed.json")
    parser.add_argument("--no-pin", action="store_true", help="do not pin the process to one core")
    args = parser.parse_args(argv)

    pinned = not args.no_pin and hasattr(os, "sched_setaffinity")
    if pinned:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    completions, solutions = make_workload(args.prompts, args.group)
    conversations = [[{"role": "assistant", "content": c}] for c in completions]
    n = len(completions)
    rows = []

    def add(name: str, seconds: float, count: int, note: str = "") -> None:
        rows.append(
            {
                "name": name,
                "completions_per_s": count / seconds,
                "us_per_completion": 1e6 * seconds / count,
                "completions": count,
                "note": note,
            }
        )

    add(
        "ours: iou + confidence + format",
        _best_time(lambda: _ours_all(completions, solutions), args.repeats),
        n,
    )
    for name in ("iou", "confidence", "format"):
        reward = rewards.get(name)
        add(
            f"ours: {name} alone (cold)",
            _best_time(lambda r=reward: _ours_one(r, completions, solutions), args.repeats),
            n,
        )
    add(
        "original: iou + confidence + format",
        _best_time(lambda: _original_all(conversations, solutions), args.repeats),
        n,
        "without the math_verify pre-check",
    )
    if mv_parse is not None:
        k = min(n, args.math_verify_subset)
        seconds = _best_time(lambda: _original_all(conversations[:k], solutions[:k], use_math_verify=True), 1)
        add(
            "original + math_verify: iou + confidence + format",
            seconds,
            k,
            "as the paper ran it; one pass on a subset",
        )

    agreement = _agreement(completions, solutions, conversations)

    result = {
        "benchmark": "reward_speed",
        "machine": _machine(pinned),
        "command": " ".join(["python bench/reward_speed.py", *(argv if argv is not None else sys.argv[1:])]),
        "workload": {
            "prompts": args.prompts,
            "group": args.group,
            "completions": n,
            "boxes_per_truth": "1-10",
            "repeats": args.repeats,
        },
        "math_verify": math_verify_version() if mv_parse is not None else None,
        "rows": rows,
        "agreement": agreement,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")

    print(f"{n} detection completions ({args.prompts} truths x {args.group}); {result['machine']}")
    print(f"{'row':<52} {'completions/s':>14} {'us/completion':>14}")
    for row in rows:
        print(
            f"{row['name']:<52} {row['completions_per_s']:>14,.0f} {row['us_per_completion']:>14.1f}  {row['note']}"
        )
    print(
        f"IoU reward equal to the original's on single-line answers: {agreement['single_line_iou_agreement']:.1%}"
    )
    if agreement["multi_line_answers"]:
        print(
            f"multi-line answers ({agreement['multi_line_answers']}): mean IoU reward ours "
            f"{agreement['multi_line_ours_iou_mean']:.3f}, original {agreement['multi_line_original_iou_mean']:.3f}"
        )
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
