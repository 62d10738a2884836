"""Training curves of runs that saw the same batches, side by side: which setting learns faster, step for step.

Two runs of the same stage with the same seed and samples draw the same batches whatever else differs (the
language model's width, the learning rate, a loss weight), so their logged metrics differ only by what the
setting did: a paired comparison, free of the sample order's noise that separates two seeds (RESULTS.md section
26). This reads each run's metrics.jsonl (`RUN/metrics.jsonl`, or a stage folder of it), checks the pairing (the
answer-token count of every compared step must match: else it stops and names the first step that differs), and
prints each metric's mean over windows of --window steps, one row per run:

    python bench/paired_curves.py runs/h12_chain/locate2 runs/w288/locate2 --window 500
    python bench/paired_curves.py runs/lr5e4/locate2 runs/lr1e3/locate2 runs/lr2e3/locate2 --steps 1000 --out r.json

In the first pass over a stage's samples (steps x batch below the pool's size) the batches are new scenes, and
the training metrics are held-out ones in effect.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

KEYS = ["loss", "binding/loss", "binding/selectivity", "binding/first_selectivity", "position/box_rmse"]
"""The metrics compared by default: the answers' NLL, the binding loss and the held heads' selectivity (over every
digit, and at each box's first digit, where the pick is made), the position probe's box error."""
PAIRED_BY = "answer_tokens"
"""The logged field that must agree step for step: the batch's answer tokens, a fingerprint of the batch."""


def paired_curves(runs: list[Path], window: int, steps: int | None = None, keys=KEYS) -> dict:
    """{run: [{'steps': [first, last], key: mean over the window's logged finite values or None}]} over the
    steps every run logged (at most `steps`); ValueError when a run has no metrics or two runs' batches differ."""
    logs = {str(r): read_steps(r) for r in runs}
    n = min(len(rows) for rows in logs.values())
    n = n if steps is None else min(n, steps)
    first, *others = logs.items()
    for name, rows in others:
        for a, b in zip(first[1][:n], rows[:n]):
            if a.get(PAIRED_BY) != b.get(PAIRED_BY):
                raise ValueError(
                    f"{name}: step {b['step']} saw another batch than {first[0]} ({PAIRED_BY} {b.get(PAIRED_BY)} "
                    f"against {a.get(PAIRED_BY)}): the runs are not paired"
                )
    return {
        name: [window_means(rows[lo : min(lo + window, n)], keys) for lo in range(0, n, window)]
        for name, rows in logs.items()
    }


def read_steps(run: Path) -> list[dict]:
    """The training steps of a run's metrics.jsonl in step order (rows without a loss, such as evaluations,
    dropped); a step logged twice is the later row (the trainer's `RunLogger` already drops a resumed run's rows
    after its checkpoint, so this only guards logs joined by hand)."""
    path = run / "metrics.jsonl" if run.is_dir() else run
    if not path.is_file():
        raise ValueError(f"{run}: no metrics.jsonl")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    rows = sorted({r["step"]: r for r in rows if "loss" in r}.values(), key=lambda r: r["step"])
    if not rows:
        raise ValueError(f"{path}: no training steps logged")
    return rows


def window_means(rows: list[dict], keys) -> dict:
    """{'steps': [first, last], key: mean of the finite values of key in rows (None: none)}."""
    out = {"steps": [rows[0]["step"], rows[-1]["step"]]}
    for key in keys:
        values = [r[key] for r in rows if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]
        out[key] = round(sum(values) / len(values), 4) if values else None
    return out


def table(curves: dict, keys) -> str:
    """Markdown: a row per window and run."""
    lines = ["| steps | run | " + " | ".join(keys) + " |", "|---|---|" + "---|" * len(keys)]
    for i in range(len(next(iter(curves.values())))):
        for name, windows in curves.items():
            w = windows[i]
            cells = ["-" if w[k] is None else f"{w[k]:.3f}" for k in keys]
            lines.append(f"| {w['steps'][0]}-{w['steps'][1]} | {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", type=Path, nargs="+", help="run or stage folders (or metrics.jsonl files)")
    parser.add_argument("--window", type=int, default=250, help="steps a row averages")
    parser.add_argument("--steps", type=int, default=None, help="compare the first N steps only")
    parser.add_argument("--keys", nargs="+", default=KEYS, help="the logged metrics to compare")
    parser.add_argument("--out", type=Path, default=None, help="also write the curves as JSON here")
    args = parser.parse_args()
    if args.window < 1:
        parser.error(f"--window {args.window}: must be at least 1")
    curves = paired_curves(args.runs, args.window, args.steps, args.keys)
    print(table(curves, args.keys))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(curves, indent=1) + "\n")


if __name__ == "__main__":
    main()
