"""What every dataset builder shares: the report of what it skipped and why, finding images, and the
nested k-shot files (`visual_rft.data.splits`) written with the report.

A builder never stops at a bad record of a dataset the user has: it skips it, counts the reason, keeps the
first few examples, and writes everything to OUT/build.json beside the JSONL files. What is wrong with the
request itself (a file that is not there, a category the file does not have) is an error before any work.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from visual_rft.data.files import atomic_path
from visual_rft.data.jsonl import DataError, write_samples
from visual_rft.data.splits import nested_splits, short_classes, shot_key
from visual_rft.data.types import Sample

EXAMPLES = 5
"""Examples kept per skip reason in the report."""


@dataclass
class BuildReport:
    """What a builder wrote, what it skipped and why (OUT/build.json)."""

    kind: str
    """The builder (coco-fewshot, lvis-ovd, classification, ...)."""
    settings: dict = field(default_factory=dict)
    """The request: input files, categories, shots, seed."""
    written: dict[str, int] = field(default_factory=dict)
    """JSONL file name -> records written."""
    skipped: dict[str, int] = field(default_factory=dict)
    """Reason -> how many things were skipped for it."""
    examples: dict[str, list[str]] = field(default_factory=dict)
    """Reason -> the first few things skipped for it."""
    notes: list[str] = field(default_factory=list)
    """Things worth knowing that skipped nothing (a category that is not rare, ...)."""

    @classmethod
    def start(cls, kind: str, **settings) -> BuildReport:
        """A report of `kind` whose settings are the request as plain JSON (paths as text, tuples as lists)."""
        plain = {k: list(v) if isinstance(v, (list, tuple)) else v for k, v in settings.items()}
        return cls(kind, {k: str(v) if isinstance(v, os.PathLike) else v for k, v in plain.items()})

    def skip(self, reason: str, example: str, n: int = 1) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + n
        kept = self.examples.setdefault(reason, [])
        if len(kept) < EXAMPLES:
            kept.append(example)

    def summary(self) -> str:
        lines = [f"{name}: {n} records" for name, n in self.written.items()]
        lines += [
            f"skipped {n} ({reason}), e.g. {', '.join(self.examples[reason])}"
            for reason, n in sorted(self.skipped.items())
        ]
        return "\n".join(lines + [f"note: {n}" for n in self.notes])

    def save(self, out_dir: str | os.PathLike) -> Path:
        path = Path(out_dir) / "build.json"
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return path


def require_file(path: str | os.PathLike, what: str) -> Path:
    """`path` as a Path; a DataError naming it and what it should be when it is not a file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no such file ({what})", path=path)
    return path


def require_dir(path: str | os.PathLike, what: str) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"no such folder ({what})", path=path)
    return path


def read_json(path: Path, what: str):
    """The decoded JSON file; a DataError naming the file when it is not JSON."""
    try:
        with open(require_file(path, what), encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(f"malformed JSON: {e.msg}", path=path, line=e.lineno) from None


def find_image(name: str, roots: list[Path]) -> Path | None:
    """The first existing roots[i] / name, else roots[i] / its file name ("train2017/x.jpg" is found in a
    COCO folder holding train2017/, or in train2017/ itself); None when no root has it."""
    for candidate in dict.fromkeys([name, os.path.basename(name)]):
        for root in roots:
            if (root / candidate).is_file():
                return root / candidate
    return None


def parse_shots(text: str) -> tuple[int, ...]:
    """'1,2,4' -> (1, 2, 4), every k at least 1."""
    try:
        ks = tuple(sorted({int(k) for k in str(text).split(",") if k.strip()}))
    except ValueError:
        raise ValueError(f"shots must be whole numbers separated by commas, got {text!r}") from None
    if not ks or ks[0] < 1:
        raise ValueError(f"shots must be at least 1, got {text!r}")
    return ks


def write_kshot(
    samples: list[Sample], out_dir: Path, prefix: str, ks, seed: int, report: BuildReport, classes=()
) -> dict[int, Path]:
    """OUT/<prefix>_<k>shot.jsonl for each k, nested (the 1-shot inside the 2-shot ...), seeded.

    A class with fewer than k shots (`classes`: the ones asked for, counted even with none) is left out
    of that k's file and reported; a k no class can fill writes no file (reported too)."""
    paths = {}
    for k, chosen in nested_splits(samples, ks, seed=seed, skip_short=True).items():
        short = {**{c: 0 for c in classes}, **short_classes(samples, k)}
        have = {shot_key(s) for s in chosen}
        for name, n in sorted(short.items()):
            if name in have:
                continue
            report.skip(f"fewer than {k} shots: left out of {prefix}_{k}shot.jsonl", f"{name} ({n})")
        if not chosen:
            report.skip("no class has enough shots: file not written", f"{prefix}_{k}shot.jsonl")
            continue
        paths[k] = write_split(chosen, out_dir / f"{prefix}_{k}shot.jsonl", report)
    return paths


def write_split(samples: list[Sample], path: Path, report: BuildReport) -> Path:
    report.written[path.name] = write_samples(path, samples)
    return path
