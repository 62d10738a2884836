"""Sweep one method's settings on the world's few-shot tasks: the SFT baseline tuned as honestly as RFT.

    for each point of the grid (the product of every --grid key's values), shots and seed:
        train SFT (or RFT) from the base on the k-shot file     (the recipe's defaults + the point's overrides)
        evaluate it on the task's test set                      (the recipe's evaluation options)
    table = headline metric per point, mean +- std over seeds, best point first

    python bench/fewshot_sweep.py --method sft --task classification --shots 1 4 --seeds 0 1 \
        --grid sft.optim.lr=1e-4,2e-4,5e-4,1e-3 --grid sft.run.steps=60,150 --out runs/sweep
    python bench/fewshot_sweep.py --method sft --task grounding --shots 16 --set base_model=runs/pre/base \
        --set world.digit_fills=true --grid sft.optim.lr=2e-4,1e-3 --out runs/sweep_grd   # another base and world

A point's run folder that holds metrics.json is not run again (a sweep can be stopped and continued).
Overrides are FewShotConfig keys (`sft.*` for --method sft, `rft.*` for --method rft), as for `vrft world fewshot`;
--set takes any FewShotConfig key and applies to every point (the base model, the world's seed and settings).
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path

from visual_rft.config import for_run, load_config
from visual_rft.data.jsonl import read_samples
from visual_rft.eval.runner import evaluate_models
from visual_rft.recipes.base_model import default_base_model
from visual_rft.recipes.fewshot import FILES, FewShotConfig, ensure_world, headline, metric
from visual_rft.rl.trainer import GRPOTrainer
from visual_rft.sft.trainer import SFTTrainer

TRAINERS = {"sft": SFTTrainer, "rft": GRPOTrainer}


def grid_points(grid: list[str]) -> list[dict[str, str]]:
    """['a=1,2', 'b=x'] -> [{'a': '1', 'b': 'x'}, {'a': '2', 'b': 'x'}]: the product of every key's values."""
    keys, values = [], []
    for item in grid:
        key, _, text = item.partition("=")
        if not key or not text:
            raise SystemExit(f"--grid {item!r}: expected key=value1,value2,...")
        keys.append(key.strip())
        values.append([v.strip() for v in text.split(",")])
    return [dict(zip(keys, combo)) for combo in itertools.product(*values)]


def run_point(
    method: str,
    point: dict,
    task: str,
    shots: int,
    seed: int,
    out: Path,
    world: Path,
    common: Sequence[str] = (),
) -> float:
    """Train `method` with the `common` overrides and the point's at (shots, seed), evaluate it; returns the
    headline metric."""
    done = out / "metrics.json"
    if done.exists():
        return metric(json.loads(done.read_text()), headline(task))
    cfg = load_config(FewShotConfig, None, [*common, *(f"{k}={v}" for k, v in point.items())])
    trainer_cfg = getattr(cfg, method)
    base = Path(cfg.base_model) if cfg.base_model else default_base_model()
    run_cfg = for_run(trainer_cfg, base, out / "run", seed, progress=False)
    prefix, test_name = FILES[task]
    TRAINERS[method](run_cfg, samples=read_samples(world / f"{prefix}_{shots}shot.jsonl")).fit()
    model = out / "run" / f"checkpoint-{run_cfg.run.steps}" / "model"
    metrics = evaluate_models({method: model}, world / f"{test_name}.jsonl", out / "eval", cfg.eval)[method]
    done.write_text(json.dumps(metrics, indent=1) + "\n")
    return metric(metrics, headline(task))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--method", choices=sorted(TRAINERS), required=True)
    p.add_argument("--task", choices=sorted(FILES), default="classification")
    p.add_argument("--shots", type=int, nargs="+", default=[1])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--grid", action="append", default=[], help="key=v1,v2,... (repeat for a product)")
    p.add_argument(
        "--set", action="append", default=[], help="key=value for every point (base_model=..., world.*)"
    )
    p.add_argument("--out", default="runs/sweep")
    args = p.parse_args(argv)
    points = grid_points(args.grid) or [{}]
    for point in points:
        bad = [k for k in point if not k.startswith(f"{args.method}.")]
        if bad:
            raise SystemExit(f"--grid {bad[0]}: a {args.method} sweep sets {args.method}.* keys only")
        load_config(
            FewShotConfig, None, [*args.set, *(f"{k}={v}" for k, v in point.items())]
        )  # bad keys fail before any run
    common = load_config(FewShotConfig, None, args.set)
    out = Path(args.out) / args.task / args.method
    world = ensure_world(Path(args.out) / "world", common.world_seed, common.world)
    rows = []
    for point in points:
        name = ",".join(f"{k.split('.', 1)[1]}={v}" for k, v in point.items()) or "defaults"
        scores = {
            k: [
                run_point(
                    args.method, point, args.task, k, s, out / name / f"{k}shot" / f"seed{s}", world, args.set
                )
                for s in args.seeds
            ]
            for k in args.shots
        }
        rows.append({"point": name, "scores": scores})
        print(json.dumps(rows[-1]), flush=True)
    rows.sort(key=lambda r: -statistics.mean(v for vs in r["scores"].values() for v in vs))
    (out / "sweep.json").write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1) + "\n")
    print(f"\n{args.method} on {args.task} ({headline(args.task)}, %), seeds {args.seeds}, best first:\n")
    print("| setting | " + " | ".join(f"{k} shot" for k in args.shots) + " |")
    print("|---|" + "---|" * len(args.shots))
    for r in rows:
        cells = [_mean_std(r["scores"][k]) for k in args.shots]
        print(f"| {r['point']} | " + " | ".join(cells) + " |")
    return 0


def _mean_std(values: list[float]) -> str:
    m = 100 * statistics.mean(values)
    return f"{m:.1f}" if len(values) == 1 else f"{m:.1f}±{100 * statistics.stdev(values):.1f}"


if __name__ == "__main__":
    sys.exit(main())
