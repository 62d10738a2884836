"""k-shot splits of any list of samples: k per class, seeded, deterministic and nested.

What counts as one shot, by task (`shot_key`):

- classification: one sample, keyed by `target.label`;
- detection: one image-category query with at least one box, keyed by `target.category` (an image
  with 3 red circles asked about 'red circle' is one shot). Negative queries ('No Objects', boxes=())
  are not shots: they are left out, unless `negatives=m` adds m of them per category on top of the k;
- grounding: one sample, keyed by `meta["kind"]` (k per reasoning kind), or "all" when there is no
  kind (k samples in all).

Nesting: the samples are sorted by id and shuffled once with the seed; the k-shot set is the first k
of each class in that order. So the 1-shot set is inside the 2-shot set, the 2-shot inside the 4-shot,
and so on, and the result depends only on the set of samples and the seed, not on their input order.
A class with fewer than k samples is an error that names it, or, with `skip_short=True` (the dataset
builders, which report it), is left out of that k's set.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

import numpy as np

from visual_rft.data.jsonl import write_samples
from visual_rft.data.types import DetectionTarget, Sample


def is_negative(sample: Sample) -> bool:
    """A detection query whose category is absent from the image."""
    return isinstance(sample.target, DetectionTarget) and not sample.target.boxes


def shot_key(sample: Sample) -> str:
    """The class a sample is a shot of (see the module docstring)."""
    if sample.task == "classification":
        return sample.target.label
    if sample.task == "detection":
        return str(sample.target.category)
    return str(sample.meta.get("kind", "all"))


def _ordered(samples: list[Sample], seed: int) -> list[Sample]:
    by_id = sorted(samples, key=lambda s: s.id)
    perm = np.random.Generator(np.random.PCG64(seed)).permutation(len(by_id))
    return [by_id[i] for i in perm]


def short_classes(samples: list[Sample], k: int) -> dict[str, int]:
    """{class: how many shots it has} for the classes with fewer than k (negative queries not counted)."""
    counts: dict[str, int] = defaultdict(int)
    for s in samples:
        if not is_negative(s):
            counts[shot_key(s)] += 1
    return {c: n for c, n in sorted(counts.items()) if n < k}


def _first_per_class(samples: list[Sample], k: int, what: str, skip_short: bool = False) -> list[Sample]:
    groups: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        groups[shot_key(s)].append(s)
    short = {c: len(g) for c, g in sorted(groups.items()) if len(g) < k}
    if skip_short:
        groups = {c: g for c, g in groups.items() if c not in short}
    elif short:
        raise ValueError(
            f"{k}-shot split needs {k} {what} per class; too few for: "
            + ", ".join(f"{c!r} ({n})" for c, n in short.items())
        )
    chosen = {id(s) for g in groups.values() for s in g[:k]}
    return [s for s in samples if id(s) in chosen]


def k_shot(
    samples: list[Sample], k: int, *, seed: int = 0, negatives: int = 0, skip_short: bool = False
) -> list[Sample]:
    """The k-shot subset: k samples per class (plus `negatives` 'No Objects' queries per detection
    category, not counted as shots), in a seeded order. Raises ValueError if a class has fewer than k
    (with `skip_short`: that class is left out; see `short_classes`)."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    order = _ordered(list(samples), seed)
    out = _first_per_class([s for s in order if not is_negative(s)], k, "samples", skip_short)
    if negatives > 0:
        out += _first_per_class([s for s in order if is_negative(s)], negatives, "negative queries")
    return out


def nested_splits(
    samples: list[Sample],
    ks=(1, 2, 4, 8, 16),
    *,
    seed: int = 0,
    negatives: int = 0,
    skip_short: bool = False,
) -> dict[int, list[Sample]]:
    """{k: k_shot(samples, k)} for each k; each set contains every smaller one (of the classes it keeps)."""
    return {k: k_shot(samples, k, seed=seed, negatives=negatives, skip_short=skip_short) for k in sorted(ks)}


def write_nested(
    samples: list[Sample],
    out_dir: str | os.PathLike,
    prefix: str,
    ks=(1, 2, 4, 8, 16),
    *,
    seed: int = 0,
    negatives: int = 0,
) -> dict[int, Path]:
    """Write out_dir/<prefix>_<k>shot.jsonl for each k; returns {k: path}."""
    paths = {}
    for k, chosen in nested_splits(samples, ks, seed=seed, negatives=negatives).items():
        paths[k] = Path(out_dir) / f"{prefix}_{k}shot.jsonl"
        write_samples(paths[k], chosen)
    return paths
