"""Recipe: the paper's tables on the synthetic world. Every task, every shot count, several seeds.

    world    = ensure_world(out/world)                         one world for every run
    base     = evaluate_models(base on each task's test set)   once per task (greedy: same for every seed)
    runs     = run_fewshot(task, k, seed)  for each cell        SFT and RFT on the same k-shot file
    RESULTS  = tables in the paper's layout, mean +- std over seeds

    vrft world bench out_dir=runs/bench                       # all four tables, 3 seeds
    vrft world bench tasks=[detection] shots=[1,2] seeds=[0]  # a part of it

A run whose results.json exists is not run again, so an interrupted benchmark continues where it stopped,
and RESULTS.md is rewritten from whatever runs are there.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from visual_rft.checks import config_section
from visual_rft.eval.runner import evaluate_models
from visual_rft.recipes.base_model import default_base_model
from visual_rft.recipes.fewshot import (
    FewShotConfig,
    check_methods,
    ensure_world,
    held_out_file,
    metric,
    run_fewshot,
    task_files,
)
from visual_rft.report.machine import machine

TABLES = {  # task -> (title, [(column, dotted metric)])
    "classification": (
        "Table 2: few-shot fine-grained classification (24 shade x colour x shape classes), accuracy %",
        [("accuracy", "classification.accuracy")],
    ),
    "detection": (
        "Table 3: few-shot detection of 10 novel colour-shape categories, COCO-style AP %",
        [("mAP", "detection.mAP"), ("AP50", "detection.AP50"), ("AP75", "detection.AP75")],
    ),
    "grounding": (
        "Table 6: reasoning grounding (size, corners, relations, digit values, colour matching), %",
        [("gIoU", "grounding.giou"), ("cIoU", "grounding.ciou"), ("acc@0.5", "grounding.acc@0.5")],
    ),
    "open_vocabulary": (
        "Table 7: open-vocabulary detection (trained on 15 base categories, tested on 10 novel ones), AP %",
        [
            ("mAP novel", "detection.mAP_novel"),
            ("mAP base", "detection.mAP_base"),
            ("mAP all", "detection.mAP_all"),
        ],
    ),
}


@dataclass
class BenchConfig:
    out_dir: str = "runs/bench"
    """Run folder: world/, <task>/base/, <task>/<k>shot/seed<s>/ and RESULTS.md."""
    tasks: list[str] = field(default_factory=lambda: list(TABLES))
    """Which tables: classification, detection, grounding, open_vocabulary."""
    shots: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16])
    """Shot counts of the classification and detection tables."""
    grounding_shots: int = 16
    """Examples per reasoning kind for the grounding table (5 kinds)."""
    ovd_shots: int = 4
    """Examples per base category for the open-vocabulary table (15 categories)."""
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    """Training seeds; every cell reports mean and spread over them."""
    results: str = ""
    """Where to write the tables (empty: OUT/RESULTS.md)."""
    fewshot: FewShotConfig = field(default_factory=lambda: FewShotConfig(progress=False))
    """Settings of each run (its sft, rft and eval sections, base_model, world_seed, world); task, shots, seed,
    out_dir and world_dir are set per run."""


def cells(cfg: BenchConfig) -> list[tuple[str, int]]:
    """(task, shots) of every experiment, in table order."""
    out = []
    for task in cfg.tasks:
        if task not in TABLES:
            raise ValueError(f"tasks: unknown task {task!r}; expected some of {sorted(TABLES)}")
        if task in ("classification", "detection"):
            out += [(task, k) for k in cfg.shots]
        else:
            out.append((task, cfg.grounding_shots if task == "grounding" else cfg.ovd_shots))
    return out


def evaluate_base(cfg: BenchConfig, task: str, base: Path, world: Path) -> dict:
    """The base model's metrics on the task's test set, computed once and kept in OUT/<task>/base/."""
    out = Path(cfg.out_dir) / task / "base"
    done = out / "metrics.json"
    if done.exists():
        return json.loads(done.read_text())["base"]
    options = replace(cfg.fewshot.eval, progress=cfg.fewshot.progress)
    return evaluate_models({"base": base}, held_out_file(world, task), out, options)["base"]


def run_bench(cfg: BenchConfig, command: str = "run_bench(cfg)") -> Path:
    """Run every missing cell x seed, then write RESULTS.md (naming `command`); returns its path."""
    grid = cells(cfg)  # bad tasks refused here
    with config_section("fewshot"):
        for task, k in grid:
            check_methods(replace(cfg.fewshot, task=task, shots=k))
    plan = [(task, k, seed) for task, k in grid for seed in cfg.seeds]
    out = Path(cfg.out_dir)
    base = Path(cfg.fewshot.base_model) if cfg.fewshot.base_model else default_base_model()
    world = ensure_world(out / "world", cfg.fewshot.world_seed, cfg.fewshot.world)
    for task, k in grid:  # every cell's files, before the base is evaluated or a cell trains
        task_files(world, task, k)
    t0 = time.perf_counter()
    base_metrics = {task: evaluate_base(cfg, task, base, world) for task in cfg.tasks}
    for i, (task, k, seed) in enumerate(plan, 1):
        run_dir = out / task / f"{k}shot" / f"seed{seed}"
        if (run_dir / "results.json").exists():
            continue
        print(f"[{i}/{len(plan)}] {task} {k}-shot seed {seed} ({time.perf_counter() - t0:.0f}s)", flush=True)
        run = replace(
            cfg.fewshot,
            task=task,
            shots=k,
            seed=seed,
            base_model=str(base),
            out_dir=str(run_dir),
            world_dir=str(world),
            eval_base=False,
        )
        run_fewshot(run)
    results = Path(cfg.results) if cfg.results else out / "RESULTS.md"
    notes = hand_written(results)
    tables = results_markdown(cfg, base_metrics, collect(cfg), time.perf_counter() - t0, command)
    results.write_text(tables + ("\n" + notes if notes else ""))
    return results


NOTES = "## What was tried"
"""A RESULTS.md section from this heading on is written by hand; rewriting the tables keeps it."""


def hand_written(path: Path) -> str:
    """The hand-written part of an existing RESULTS.md (from the NOTES heading on), or ''."""
    if not path.exists():
        return ""
    text = "\n" + path.read_text()  # the heading may open the file (notes written before any table)
    i = text.find("\n" + NOTES)
    return text[i + 1 :] if i >= 0 else ""


def collect(cfg: BenchConfig) -> dict[tuple[str, int], list[dict]]:
    """{(task, shots): [results.json of each seed that has run]}."""
    out = {}
    for task, k in cells(cfg):
        runs = [Path(cfg.out_dir) / task / f"{k}shot" / f"seed{s}" / "results.json" for s in cfg.seeds]
        out[(task, k)] = [json.loads(p.read_text()) for p in runs if p.exists()]
    return out


def mean_std(values: list[float]) -> str:
    """'m.m +- s.s' in percent (spread: sample standard deviation over seeds)."""
    if not values:
        return "-"
    pct = [100 * v for v in values]
    if len(pct) == 1:
        return f"{pct[0]:.1f}"
    return f"{statistics.mean(pct):.1f} ± {statistics.stdev(pct):.1f}"


def results_markdown(cfg: BenchConfig, base: dict, runs: dict, seconds: float, command: str) -> str:
    """The tables, with the command, the machine, the budget and the time taken."""
    f = cfg.fewshot
    sft, rft = f.sft, f.rft
    m = machine("transformers")
    n_runs = sum(len(r) for r in runs.values())
    run_s = sum(sum(r["timings"].values()) for results in runs.values() for r in results)
    lines = [
        "# Results on the synthetic world",
        "",
        f"Written by `{command}`.",
        "",
        f"- machine: {m.get('gpu') or m.get('cpu', '?')}, {m['cpu_count']} cores, torch {m['torch']}, "
        f"{m['torch_threads']} threads; the {n_runs} runs took {run_s / 60:.1f} min of SFT + RFT + evaluation "
        f"in all; this call took {seconds / 60:.1f} min (runs already done are not redone)",
        f"- base model: `{f.base_model or default_base_model()}`; every run starts from it",
        f"- seeds {cfg.seeds}: mean ± sample standard deviation over the seeds that have run (n in each row)",
        f"- budget per run: SFT {sft.run.steps} steps x {sft.sft.batch_size} sequences = "
        f"{sft.run.steps * sft.sft.batch_size} sequences (lr {sft.optim.lr}); RFT {rft.run.steps} steps x "
        f"{rft.grpo.prompts_per_step} prompts x G={rft.grpo.group_size} = "
        f"{rft.run.steps * rft.grpo.prompts_per_step * rft.grpo.group_size} sampled sequences "
        f"(lr {rft.optim.lr}, beta {rft.grpo.beta}, rewards "
        f"{rft.grpo.rewards or 'of the paper: task defaults'}); both on the same k-shot file",
        f"- test: the first {f.eval.limit or 'all'} queries of each task's held-out test file, greedy decoding",
        "",
    ]
    for task in cfg.tasks:
        title, columns = TABLES[task]
        lines += [f"## {title}", "", "| model | shots | n | " + " | ".join(c for c, _ in columns) + " |"]
        lines.append("|---|---|---|" + "---|" * len(columns))
        lines.append(
            "| base | - | 1 | " + " | ".join(mean_std([metric(base[task], d)]) for _, d in columns) + " |"
        )
        for (t, k), results in runs.items():
            if t != task:
                continue
            for name, label in (("sft", "SFT"), ("rft", "Visual-RFT")):
                values = [mean_std([metric(r["metrics"][name], d) for r in results]) for _, d in columns]
                lines.append(f"| {label} | {k} | {len(results)} | " + " | ".join(values) + " |")
            deltas = [
                mean_std([metric(r["metrics"]["rft"], d) - metric(r["metrics"]["sft"], d) for r in results])
                for _, d in columns
            ]
            lines.append(f"| Δ RFT − SFT | {k} | {len(results)} | " + " | ".join(deltas) + " |")
        lines.append("")
    return "\n".join(lines)
