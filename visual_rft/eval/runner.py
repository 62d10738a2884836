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

Scoring, by task (a file may mix tasks: each task is then scored on its own samples, under its name):

- classification: ``accuracy`` is the strict rule of the training reward (``cls_reward == 1``: exact match
  after normalisation); ``lenient_accuracy`` the paper's substring rule (``cls_lenient_reward``), for
  comparison with its numbers; per-class strict accuracy; ``unparseable``: the share without an answer.
- detection: COCO-style AP (`metrics.detection_metrics`), one query per (image, category) as the paper asks;
  each query's predictions ranked by their stated confidence; boxes converted from the model's convention
  to original pixels with `visual_rft.coords.from_model` and the frame the prompt was written in. Samples
  with the same first image path are the same image. When samples carry ``meta["split"]`` in
  {"base", "novel"}, AP is also reported over base, novel and all categories (open vocabulary).
  ``unparseable``: the share of asked queries whose answer could not be read.
- grounding: `metrics.grounding_metrics` on the one box of each answer, in original pixels: ``giou``
  (LISA's gIoU: the mean per-sample IoU), ``ciou`` (total intersection / total union), ``acc@0.5``,
  ``missing`` (no box could be read).

Which detection queries are asked (``categories``, `plan_queries`):

- ``"file"`` (default): exactly the queries of the test file, nothing added or dropped.
- ``"present"``: per image, only the categories with ground truth in it (the paper's protocol); the file's
  queries for absent categories are dropped.
- ``"all"``: per image, every category of the file's vocabulary (all categories its detection samples
  name); a missing one becomes a new query with empty ground truth (the right answer is 'No Objects'), so
  false positives on absent categories lower AP.
- a path to a JSON existence map ``{image: [category, ...]}``: per image, the categories it lists (within the
  vocabulary). An image is looked up by its path as written in the sample, its file name, its file name
  without extension, or ``meta["image_id"]``; an image the map does not list asks nothing.

Added queries copy the image's first sample (size, meta split of the category when known) and get the
problem of `detection_problem`: the first sample's problem with its quoted category name replaced, or
the standard template. A query of the file that is not asked keeps its ground truth, with no predictions:
its objects count as missed.
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

from visual_rft.coords import CoordFrame, from_model
from visual_rft.data.jsonl import read_samples, sample_from_dict, sample_to_dict
from visual_rft.data.types import Box, DetectionTarget, Sample
from visual_rft.eval.metrics import (
    DetectionQuery,
    classification_metrics,
    detection_metrics,
    grounding_metrics,
    load_existence_map,
    open_vocab_metrics,
    queries_for_image,
)
from visual_rft.eval.table import markdown_table, to_json
from visual_rft.rewards.classification import cls_lenient_reward, cls_reward
from visual_rft.rewards.parse import class_answer, detection_answer, grounding_answer

COMPLETIONS = "completions.jsonl"
RUN = "run.json"
METRICS_JSON = "metrics.json"
METRICS_MD = "metrics.md"

DETECTION_PROBLEM = "Detect all objects belonging to the category '{category}' in the image."
"""The problem of an added detection query when no sample of the image gives a problem to adapt."""

CATEGORY_MODES = ("file", "present", "all")


@dataclass
class EvalOptions:
    """How to run an evaluation (the command line's flags)."""

    batch_size: int = 8
    """Prompts generated together."""
    max_new_tokens: int = 256
    """The most tokens generated per sample."""
    min_new_tokens: int = 0
    """The fewest tokens generated per sample (for benchmarks)."""
    temperature: float = 0.0
    """0: greedy decoding (the default); above 0: sampling at this temperature."""
    top_p: float = 1.0
    """Nucleus sampling mass, when sampling."""
    seed: int = 0
    """Random seed (sampling only)."""
    dtype: str = "auto"
    """Model dtype: auto (bf16 on a GPU that has it, else fp32), fp32, bf16, fp16."""
    device: str = "auto"
    """cuda, cpu, cuda:1, ... or auto."""
    categories: str = "file"
    """Which detection queries to ask: file, present, all, or a path to an existence map (module docstring)."""
    sort: bool = True
    """Batch prompts of similar length together (less padding; the result is the same)."""
    progress: bool = True
    """Show a progress bar with ETA."""
    limit: int | None = None
    """Evaluate only the first `limit` samples of the file (quick checks)."""


# ----------------------------------------------------------------------------------------------------------
# which queries to ask


def category_of(sample: Sample) -> str:
    """The category a detection sample asks about (its target's, else its first box's, else 'object')."""
    target = sample.target
    if isinstance(target, DetectionTarget):
        if target.category:
            return target.category
        for box in target.boxes:
            if box.category:
                return box.category
    return "object"


def image_key(sample: Sample) -> str:
    """The image a sample is about: its first image path (samples sharing it are one COCO image)."""
    return sample.images[0]


def detection_problem(category: str, example: Sample | None = None) -> str:
    """The question of a detection query for `category`.

    With `example` (a detection sample), its problem with its own category name, quoted as it is written,
    replaced by `category`; otherwise (or when the name is not found quoted) `DETECTION_PROBLEM`.
    """
    if example is not None:
        source = category_of(example)
        for quote in ("'", '"'):
            quoted = f"{quote}{source}{quote}"
            if quoted in example.problem:
                return example.problem.replace(quoted, f"{quote}{category}{quote}")
    return DETECTION_PROBLEM.format(category=category)


def category_splits(samples: Sequence[Sample]) -> dict[str, str]:
    """{category: "base" | "novel"} from the detection samples' meta["split"]; a category in both is an error."""
    splits: dict[str, str] = {}
    for s in samples:
        split = s.meta.get("split")
        if s.task != "detection" or split not in ("base", "novel"):
            continue
        category = category_of(s)
        if splits.setdefault(category, split) != split:
            raise ValueError(
                f"sample {s.id}: category {category!r} is marked both 'base' and 'novel' (meta.split)"
            )
    return splits


def _existence_lookup(existence: Mapping[str, list[str]], sample: Sample) -> list[str]:
    path = image_key(sample)
    keys = [path, os.path.basename(path), os.path.splitext(os.path.basename(path))[0]]
    if "image_id" in sample.meta:
        keys.insert(0, str(sample.meta["image_id"]))
    for key in keys:
        if key in existence:
            return existence[key]
    return []


def plan_queries(samples: Sequence[Sample], categories: str = "file") -> list[tuple[Sample, bool]]:
    """(sample, asked) for every query: the file's samples in order, then added detection queries.

    `categories`: "file", "present", "all" or the path of an existence map (see the module docstring).
    Samples of other tasks are always asked as they are.
    """
    if categories == "file":
        return [(s, True) for s in samples]
    if categories in CATEGORY_MODES:
        mode, existence = categories, None
    elif os.path.isfile(categories):
        mode, existence = "existence", load_existence_map(categories)
    else:
        raise ValueError(
            f"categories {categories!r}: expected one of {CATEGORY_MODES} or the path of an existence map "
            "(a JSON object {image: [category, ...]}); no such file"
        )
    splits = category_splits(samples)
    detection = [s for s in samples if s.task == "detection"]
    vocabulary = list(dict.fromkeys(category_of(s) for s in detection))
    by_image: dict[str, list[Sample]] = {}
    for s in detection:
        by_image.setdefault(image_key(s), []).append(s)
    wanted: dict[str, set[str]] = {}
    added: list[Sample] = []
    for key, group in by_image.items():
        given = {category_of(s): s for s in group}
        present = [c for c, s in given.items() if s.target.boxes]
        names = None if existence is None else _existence_lookup(existence, group[0])
        wanted[key] = set(queries_for_image(present, vocabulary, mode, names))
        for category in vocabulary:
            if category in wanted[key] and category not in given:
                added.append(_added_query(group[0], category, splits.get(category)))
    plan = [(s, s.task != "detection" or category_of(s) in wanted[image_key(s)]) for s in samples]
    return plan + [(s, True) for s in added]


def _added_query(first: Sample, category: str, split: str | None) -> Sample:
    meta: dict[str, Any] = {"added_query": True, "source_id": first.id}
    if split is not None:
        meta["split"] = split
    return Sample(
        id=f"{first.id}::{category}",
        images=list(first.images),
        task="detection",
        problem=detection_problem(category, first),
        target=DetectionTarget((), category),
        width=first.width,
        height=first.height,
        meta=meta,
    )


# ----------------------------------------------------------------------------------------------------------
# completions: what re-scoring needs


@dataclass
class Completion:
    """One query's result: the sample, the completion (None when not asked), the frame of its prompt."""

    sample: Sample
    completion: str | None
    frame: CoordFrame | None
    asked: bool = True
    n_tokens: int = 0

    def to_dict(self) -> dict:
        frame = None
        if self.frame is not None:
            frame = {"convention": self.frame.convention, "size": list(self.frame.size)}
            frame["resized"] = None if self.frame.resized is None else list(self.frame.resized)
        return {
            "id": self.sample.id,
            "completion": self.completion,
            "asked": self.asked,
            "n_tokens": self.n_tokens,
            "frame": frame,
            "sample": sample_to_dict(self.sample),
        }

    @classmethod
    def from_dict(cls, obj: dict) -> Completion:
        f = obj.get("frame")
        frame = None
        if f is not None:
            resized = None if f.get("resized") is None else tuple(f["resized"])
            frame = CoordFrame(f["convention"], tuple(f["size"]), resized)
        return cls(
            sample=sample_from_dict(obj["sample"]),
            completion=obj.get("completion"),
            frame=frame,
            asked=obj.get("asked", True),
            n_tokens=obj.get("n_tokens", 0),
        )


def write_completions(path: str | os.PathLike, records: Sequence[Completion]) -> None:
    """Write completions as JSONL (atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r.to_dict(), ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def read_completions(path: str | os.PathLike) -> list[Completion]:
    """Read a completions file written by `write_completions`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no completions file")
    out = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                out.append(Completion.from_dict(json.loads(line)))
            except (ValueError, KeyError, TypeError) as e:
                raise ValueError(f"{path}:{lineno}: bad completion record: {e}") from None
    return out


# ----------------------------------------------------------------------------------------------------------
# scoring


def _to_pixels(box4, frame: CoordFrame) -> tuple[float, float, float, float]:
    return from_model(Box(*box4), frame).xyxy


def classification_scores(records: Sequence[Completion]) -> dict[str, Any]:
    """Strict accuracy (cls_reward), the paper's lenient accuracy, per-class accuracy, unparseable share."""
    labels = [r.sample.target.label for r in records]
    strict = [cls_reward(r.completion, r.sample.target) == 1.0 for r in records]
    lenient = [cls_lenient_reward(r.completion, r.sample.target) == 1.0 for r in records]
    parsed = [class_answer(r.completion) is not None for r in records]
    return classification_metrics(strict, lenient, labels, parsed)


def detection_queries(
    records: Sequence[Completion],
) -> tuple[list[DetectionQuery], dict[str, tuple[int, int]]]:
    """One `DetectionQuery` per record (boxes in original pixels) and {image: (width, height)}."""
    queries, sizes = [], {}
    for r in records:
        s = r.sample
        key = image_key(s)
        if r.frame is not None:
            sizes[key] = r.frame.size
        elif s.width and s.height:
            sizes.setdefault(key, (s.width, s.height))
        boxes, scores = [], []
        if r.asked and r.frame is not None:
            for p in detection_answer(r.completion).predictions:
                boxes.append(_to_pixels(p.box, r.frame))
                scores.append(p.confidence)
        gt = [b.xyxy for b in s.target.boxes]
        queries.append(DetectionQuery(key, category_of(s), gt, boxes, scores))
    return queries, sizes


def detection_scores(records: Sequence[Completion]) -> dict[str, Any]:
    """COCO-style AP (open-vocabulary base / novel / all when the samples carry splits), unparseable share."""
    queries, sizes = detection_queries(records)
    splits = category_splits([r.sample for r in records])
    if splits:
        base = sorted(c for c, v in splits.items() if v == "base")
        novel = sorted(c for c, v in splits.items() if v == "novel")
        out = open_vocab_metrics(queries, base, novel, sizes)
    else:
        out = detection_metrics(queries, sizes)
    asked = [r for r in records if r.asked]
    out["unparseable"] = _share([not detection_answer(r.completion).readable for r in asked])
    out["n_asked"] = len(asked)
    return out


def grounding_scores(records: Sequence[Completion]) -> dict[str, Any]:
    """gIoU (mean IoU), cIoU, share with IoU > 0.5, share without a box; boxes in original pixels."""
    preds = []
    for r in records:
        box = grounding_answer(r.completion) if r.frame is not None else None
        preds.append(None if box is None else _to_pixels(box, r.frame))
    return grounding_metrics(preds, [r.sample.target.box.xyxy for r in records])


SCORERS = {
    "classification": classification_scores,
    "detection": detection_scores,
    "grounding": grounding_scores,
}

HEADLINE = {
    "classification": ["accuracy", "lenient_accuracy", "unparseable", "n"],
    "detection": [
        "mAP",
        "AP50",
        "AP75",
        "mAP_base",
        "mAP_novel",
        "mAP_all",
        "AP50_base",
        "AP50_novel",
        "unparseable",
        "n_queries",
    ],
    "grounding": ["giou", "ciou", "acc@0.5", "missing", "n"],
}
"""The metrics shown in the markdown table, per task (the JSON holds everything)."""


def score(records: Sequence[Completion]) -> dict[str, Any]:
    """The metrics of one model's completions.

    One task: ``{"task": task, **metrics}``. Several: ``{"task": "mixed", "<task>": {metrics}, ...}``.
    """
    by_task: dict[str, list[Completion]] = {}
    for r in records:
        by_task.setdefault(r.sample.task, []).append(r)
    results = {task: SCORERS[task](rs) for task, rs in by_task.items()}
    if len(results) == 1:
        ((task, metrics),) = results.items()
        return {"task": task, **metrics}
    return {"task": "mixed", **results}


def headline_rows(results: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The table rows for several models' metrics: each task's headline metrics that some model reports."""
    rows: dict[str, None] = {}
    for metrics in results.values():
        task = metrics.get("task")
        if task in HEADLINE:
            pairs = [(name, name, metrics) for name in HEADLINE[task]]
        else:  # mixed tasks: dotted paths into each task's metrics
            pairs = [(f"{t}.{name}", name, metrics.get(t) or {}) for t in HEADLINE for name in HEADLINE[t]]
        for row, key, source in pairs:
            if key in source:
                rows.setdefault(row)
    return list(rows)


def write_report(
    results: Mapping[str, Mapping[str, Any]],
    out_dir: str | os.PathLike,
    title: str = "",
    *,
    write_json: bool = True,
) -> None:
    """metrics.json ({model: metrics}, unless not `write_json`) and metrics.md (the headline table)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if write_json:
        to_json(results, out / METRICS_JSON)
    table = markdown_table(results, headline_rows(results))
    notes = (
        "Fractions x100. Classification: `accuracy` is the strict rule (exact match after normalisation, "
        "the training reward), `lenient_accuracy` the paper's substring rule. Detection: COCO AP at IoU "
        "0.50:0.95 (`mAP`), 0.50, 0.75. Grounding: `giou` = mean IoU (LISA), `ciou` = cumulative IoU.\n"
    )
    head = f"# {title}\n\n" if title else ""
    (out / METRICS_MD).write_text(head + table + "\n" + notes, encoding="utf-8")


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
) -> dict[str, Any]:
    """Generate, save completions and metrics of one model in `out_dir`; returns the metrics.

    `model` / `processor`: already loaded objects to use instead of loading `model_dir` (e.g. a policy
    during training; it is used as it is: put it in eval mode first).
    """
    import torch

    from visual_rft.eval.generate import DecodeOptions, generate
    from visual_rft.models.loading import coord_convention, load_model, load_processor, model_family

    options = options or EvalOptions()
    name = name or Path(model_dir).name
    plan = plan_queries(samples, options.categories)
    owns_model = model is None
    if model is None:
        model = load_model(model_dir, dtype=options.dtype, device=options.device)
    if processor is None:
        processor = load_processor(model_dir)
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
    metrics = score(records)
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


def evaluate_models(
    models: Mapping[str, str | os.PathLike] | Sequence[str],
    data: str | os.PathLike,
    out_dir: str | os.PathLike,
    options: EvalOptions | None = None,
) -> dict[str, dict[str, Any]]:
    """Evaluate several model folders on one test file, side by side; returns {name: metrics}.

    `models`: {name: folder}, or command-line specs (``path`` or ``name=path``, see `model_names`).
    Writes OUT/<name>/ for each model, then OUT/run.json, OUT/metrics.json and OUT/metrics.md.
    """
    options = options or EvalOptions()
    if not isinstance(models, Mapping):
        models = model_names(list(models))
    if not models:
        raise ValueError("no model folders to evaluate")
    samples = load_test_samples(data, options.limit)
    category_splits(samples)  # fail on bad data, a bad option or map before loading any model
    plan_queries(samples, options.categories)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    run = {"data": str(data), "models": {n: str(p) for n, p in models.items()}, "options": asdict(options)}
    (out / RUN).write_text(json.dumps(run, indent=2) + "\n", encoding="utf-8")
    results = {}
    for name, path in models.items():
        results[name] = evaluate_model(path, samples, out / name, options, name=name)
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
    run_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None
) -> dict[str, dict[str, Any]]:
    """Score the saved completions of a run again (no model, no generation); returns {name: metrics}.

    Rewrites each model's metrics.json next to its completions, and the run's metrics.json and metrics.md
    in `out_dir` (default: the run folder). `run_dir` may also be one model's folder (holding
    completions.jsonl): its metrics.json then stays that model's metrics alone, beside a one-column table.
    """
    run = Path(run_dir)
    folders = run_folders(run)
    results = {}
    for name, folder in folders.items():
        results[name] = score(read_completions(folder / COMPLETIONS))
        to_json(results[name], folder / METRICS_JSON)
    single = (run / COMPLETIONS).is_file()
    out = Path(out_dir) if out_dir is not None else run
    title = ""
    if (run / RUN).is_file():
        data = json.loads((run / RUN).read_text(encoding="utf-8")).get("data")
        title = f"Evaluation on {Path(data).name}" if data else ""
    write_report(results, out, title=title, write_json=not (single and out.resolve() == run.resolve()))
    return results


def _share(flags: Sequence[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None
