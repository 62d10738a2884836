"""`vrft demo`: the paper's central claim, in minutes on a laptop.

From the shipped base model, a few-shot detection experiment on the synthetic world's novel categories:
base model, SFT and RFT trained on the same 2 examples per category, evaluated on held-out images. Prints the
comparison table and writes a run folder with the metrics, the reward curve and test images with boxes.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from visual_rft.recipes.fewshot import FewShotConfig, headline, metric, run_fewshot


def run_demo(out_dir: Path, cfg: FewShotConfig | None = None) -> int:
    """Run the demo into `out_dir`; `cfg` (default: the recipe's own settings) may shrink it for tests."""
    t0 = time.perf_counter()
    cfg = replace(cfg or FewShotConfig(), task="detection", shots=2, out_dir=str(out_dir))
    print(f"few-shot detection on novel categories, {cfg.shots} shots: base vs SFT vs RFT (Visual-RFT)")
    results = run_fewshot(cfg)
    out = Path(out_dir)
    print()
    print((out / "eval" / "metrics.md").read_text())
    key = headline(cfg.task)
    b = results["budget"]
    print(
        f"{key}: "
        + ", ".join(f"{m} {metric(results['metrics'][m], key):.3f}" for m in ("base", "sft", "rft"))
    )
    print(
        f"same {b['examples']} examples; SFT {b['sft']['steps']} steps x {cfg.sft.sft.batch_size} sequences, "
        f"RFT {b['rft']['steps']} steps x {cfg.rft.grpo.prompts_per_step} prompts x G={cfg.rft.grpo.group_size}"
    )
    print(f"outputs: {out}/eval/metrics.md, {out}/reward_curve.png, {out}/test*_rft.png, {out}/results.json")
    print(f"done in {time.perf_counter() - t0:.0f}s")
    return 0
