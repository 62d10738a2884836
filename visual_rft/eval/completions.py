"""The saved completions format: one JSON line per query with the completion, the coordinate frame its
prompt was written in, and the whole sample (target, meta): all that re-scoring needs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from visual_rft.data.coords import CoordFrame
from visual_rft.data.files import write_lines_atomic
from visual_rft.data.jsonl import sample_from_dict, sample_to_dict
from visual_rft.data.types import Sample

COMPLETIONS = "completions.jsonl"
"""The file name of one model's completions inside its evaluation folder."""


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
    write_lines_atomic(path, (json.dumps(r.to_dict(), ensure_ascii=False) for r in records))


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
