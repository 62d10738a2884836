"""The evaluation runner: model folders x a JSONL test set -> completions, metrics.json, metrics.md.

    evaluate_models({"base": "models/base", "rft": "runs/rft/final"}, "test.jsonl", "runs/eval")
    rescore("runs/eval")   # the same metrics again from the saved completions, no model needed

The run folder::

    OUT/run.json                   the data file, the options, the models evaluated (name -> folder)
    OUT/metrics.json               {model name: metrics}
    OUT/metrics.md                 the headline metrics, one column per model
    OUT/<name>/completions.jsonl   one line per query: id, completion, the coordinate frame of the prompt,
                                   and the whole sample (target, meta): all that re-scoring needs
    OUT/<name>/run.json            model folder, family, convention, timing (samples/s, tokens/s)
    OUT/<name>/metrics.json        that model's metrics alone

Which queries are asked: `visual_rft.eval.queries`; how completions are scored: `visual_rft.eval.scoring`.
"""

from __future__ import annotations

import gc
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from visual_rft.checks import check_at_least, config_section
from visual_rft.config import EvalOptions
from visual_rft.data.jsonl import read_samples
from visual_rft.data.types import Sample
from visual_rft.eval.completions import COMPLETIONS, Completion, read_completions, write_completions
from visual_rft.eval.generate import DecodeOptions, generate
from visual_rft.eval.queries import category_splits, plan_queries
from visual_rft.eval.report import METRICS_JSON, write_report
from visual_rft.eval.sam import SamMasks
from visual_rft.eval.scoring import score
from visual_rft.eval.table import to_json
from visual_rft.models.loading import (
    coord_convention,
    is_model_folder,
    load_model,
    load_processor,
    model_family,
    resolve_dtype,
)

RUN = "run.json"


# ----------------------------------------------------------------------------------------------------------
# running models


@dataclass
class ModelRun:
    """What one model's evaluation did (written to <name>/run.json)."""

    name: str
    model_dir: str
    family: str
    convention: str
    n_samples: int
    n_asked: int
    seconds: float
    samples_per_s: float
    tokens: int
    tokens_per_s: float
    options: dict = field(default_factory=dict)


def model_names(specs: Sequence[str]) -> dict[str, str]:
    """{name: folder} from command-line specs ``path`` or ``name=path``; names must be unique."""
    out: dict[str, str] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or os.path.exists(spec):
            name, path = Path(spec.rstrip("/\\")).name or spec, spec
        if name in out:
            raise ValueError(f"two models named {name!r}; name them with name=path")
        out[name] = path
    return out


def load_test_samples(data: str | os.PathLike, limit: int | None = None) -> list[Sample]:
    """The samples of a test JSONL (the first `limit` of them when given)."""
    samples = read_samples(data)
    if limit is not None:
        samples = samples[:limit]
    if not samples:
        raise ValueError(f"{data}: no samples to evaluate")
    return samples


def evaluate_model(
    model_dir: str | os.PathLike,
    samples: Sequence[Sample],
    out_dir: str | os.PathLike,
    options: EvalOptions | None = None,
    *,
    name: str | None = None,
    model=None,
    processor=None,
    masks=None,
) -> dict[str, Any]:
    """Generate, save completions and metrics of one model in `out_dir`; returns the metrics.

    `model` / `processor`: already loaded objects to use instead of loading `model_dir` (e.g. a policy
    during training; it is used as it is: put it in eval mode first). `masks`: a box -> mask predictor
    (`SamMasks`) for grounding's mask metrics.
    """
    options = options or EvalOptions()
    name = name or Path(model_dir).name
    plan = plan_queries(samples, options.categories)
    owns_model = model is None
    if model is None:
        model = load_model(model_dir, dtype=options.dtype, device=options.device)
    if processor is None:
        processor = load_processor(model_dir, options.max_pixels)
    family = model_family(model.config)
    convention = coord_convention(family)
    decode = DecodeOptions(
        max_new_tokens=options.max_new_tokens,
        min_new_tokens=options.min_new_tokens,
        do_sample=options.temperature > 0,
        temperature=options.temperature if options.temperature > 0 else 1.0,
        top_p=options.top_p,
    )
    torch.manual_seed(options.seed)
    asked = [s for s, a in plan if a]
    t0 = time.perf_counter()
    gens = generate(
        model,
        processor,
        asked,
        batch_size=options.batch_size,
        options=decode,
        convention=convention,
        sort=options.sort,
        progress=options.progress,
        desc=name,
    )
    seconds = time.perf_counter() - t0
    it = iter(gens)
    records = []
    for sample, was_asked in plan:
        if was_asked:
            g = next(it)
            records.append(Completion(sample, g.text, g.frame, True, g.n_tokens))
        else:
            records.append(Completion(sample, None, None, False, 0))
    out = Path(out_dir)
    write_completions(out / COMPLETIONS, records)
    metrics = score(records, masks)
    tokens = sum(g.n_tokens for g in gens)
    run = ModelRun(
        name=name,
        model_dir=str(model_dir),
        family=family,
        convention=convention,
        n_samples=len(samples),
        n_asked=len(asked),
        seconds=round(seconds, 3),
        samples_per_s=round(len(asked) / seconds, 3) if seconds > 0 else 0.0,
        tokens=tokens,
        tokens_per_s=round(tokens / seconds, 1) if seconds > 0 else 0.0,
        options=asdict(options),
    )
    (out / RUN).write_text(json.dumps(asdict(run), indent=2) + "\n", encoding="utf-8")
    to_json(metrics, out / METRICS_JSON)
    if owns_model:
        del model
        gc.collect()
    return metrics


def check_eval_options(options: EvalOptions) -> None:
    """Refuse options the evaluation cannot run, before any data or model loads (the few-shot recipes check
    their `eval` section before anything trains)."""
    check_at_least({"batch_size": options.batch_size, "max_new_tokens": options.max_new_tokens}, 1)
    check_at_least({"min_new_tokens": options.min_new_tokens, "max_pixels": options.max_pixels}, 0)
    if options.min_new_tokens > options.max_new_tokens:
        raise ValueError(
            f"min_new_tokens ({options.min_new_tokens}) is above max_new_tokens ({options.max_new_tokens})"
        )
    check_at_least({"temperature": options.temperature}, 0)  # 0: greedy
    if not 0 < options.top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {options.top_p}")
    if options.limit is not None:
        check_at_least({"limit": options.limit}, 1)
    with config_section("dtype"):
        resolve_dtype(options.dtype, torch.device("cpu"))
    plan_queries([], options.categories)  # a mode, or an existence map that reads


def evaluate_models(
    models: Mapping[str, str | os.PathLike] | Sequence[str],
    data: str | os.PathLike,
    out_dir: str | os.PathLike,
    options: EvalOptions | None = None,
    sam: str | os.PathLike | None = None,
) -> dict[str, dict[str, Any]]:
    """Evaluate several model folders on one test file, side by side; returns {name: metrics}.

    `models`: {name: folder}, or command-line specs (``path`` or ``name=path``, see `model_names`).
    `sam`: a local SamModel folder: grounding's mask gIoU / cIoU from masks SAM predicts from the boxes.
    Writes OUT/<name>/ for each model, then OUT/run.json, OUT/metrics.json and OUT/metrics.md.
    """
    options = options or EvalOptions()
    check_eval_options(options)
    if not isinstance(models, Mapping):
        models = model_names(list(models))
    if not models:
        raise ValueError("no model folders to evaluate")
    missing = [f"{name}={path}" for name, path in models.items() if not is_model_folder(path)]
    missing += [f"--sam {sam}"] if sam is not None and not is_model_folder(sam) else []
    if missing:  # before any model loads
        raise FileNotFoundError(
            f"not a model folder (no config.json or adapter_config.json): {', '.join(missing)}"
        )
    samples = load_test_samples(data, options.limit)
    category_splits(samples)  # fail on bad data, a bad option or map before loading any model
    plan_queries(samples, options.categories)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    run = {"data": str(data), "models": {n: str(p) for n, p in models.items()}, "options": asdict(options)}
    (out / RUN).write_text(json.dumps(run, indent=2) + "\n", encoding="utf-8")
    masks = None if sam is None else SamMasks(str(sam), options.device)
    results = {}
    for name, path in models.items():
        results[name] = evaluate_model(path, samples, out / name, options, name=name, masks=masks)
    write_report(results, out, title=f"Evaluation on {Path(data).name}")
    return results


def run_folders(run_dir: str | os.PathLike) -> dict[str, Path]:
    """{model name: folder holding its completions} of a run folder (or of one model's folder)."""
    run = Path(run_dir)
    if (run / COMPLETIONS).is_file():
        return {run.resolve().name: run}
    names: list[str] = []
    if (run / RUN).is_file():
        names = list(json.loads((run / RUN).read_text(encoding="utf-8")).get("models", {}))
    found = sorted(p.parent.name for p in run.glob(f"*/{COMPLETIONS}"))
    ordered = [n for n in names if n in found] + [n for n in found if n not in names]
    if not ordered:
        raise FileNotFoundError(
            f"{run}: no {COMPLETIONS} in it or in its subfolders; is it a `vrft eval` run?"
        )
    return {n: run / n for n in ordered}


def rescore(
    run_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None, sam: str | os.PathLike | None = None
) -> dict[str, dict[str, Any]]:
    """Score the saved completions of a run again (no model, no generation); returns {name: metrics}.

    Rewrites each model's metrics.json next to its completions, and the run's metrics.json and metrics.md
    in `out_dir` (default: the run folder). `run_dir` may also be one model's folder (holding
    completions.jsonl): its metrics.json then stays that model's metrics alone, beside a one-column table.
    `sam`: as in `evaluate_models` (the mask metrics need no VLM either).
    """
    run = Path(run_dir)
    folders = run_folders(run)
    masks = None if sam is None else SamMasks(str(sam))
    results = {}
    for name, folder in folders.items():
        results[name] = score(read_completions(folder / COMPLETIONS), masks)
        to_json(results[name], folder / METRICS_JSON)
    single = (run / COMPLETIONS).is_file()
    out = Path(out_dir) if out_dir is not None else run
    title = ""
    if (run / RUN).is_file():
        data = json.loads((run / RUN).read_text(encoding="utf-8")).get("data")
        title = f"Evaluation on {Path(data).name}" if data else ""
    write_report(results, out, title=title, write_json=not (single and out.resolve() == run.resolve()))
    return results
