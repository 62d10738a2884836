"""Does the model know, where a detection answer closes a box, whether another instance is left to write?

A model that reads presence writes one box where 1-4 are asked (RESULTS.md section 45). At each box's close in the
reference answer (the token `},` when another box follows, `}` when the list ends: `recipes/answer_reads.box_ends`),
teacher-forced with the think text the model was trained to write, this reads the model's own margin there,
logit("},") - logit("}") at the position that predicts the close:

- `AUC`: over (more, last) pairs of closes, the share the margin ranks the right way round (0.5: not read, 1: a
  threshold would tell them apart); `AUC first close`: the same at the first box's close only (a query of several
  instances against a query of one), the decision an answer of one box gets wrong;
- `more said`: of the closes followed by another box, and of the last ones, the share where "}," is above "}";
- `digits by box`: in the answers listing several boxes, per box (1, 2, ...), its digit tokens' mean NLL, the share
  the model's argmax writes right, and the share of boxes whose first digit it writes right: whether a later box's
  coordinates are read at all, given the boxes before it (RESULTS.md section 46);
- `places by box`: the same of the places' words, where the think names each box's place first (`--think` with
  `{region}`, `sft.detection_think`; section 47): whether the k-th place is read, given the places before it;
- `box 1 / box 2 first digit by start`: the first digit right by the answer token it stands at (box 2's moves with
  the digits box 1 took): whether a box is read at one offset in the answer and not at others (section 47).

    python bench/more_probe.py --models runs/multi45/mix/checkpoint-1000/model \\
        --data runs/dethits_dd_A/held_out/detection_test.jsonl --out runs/multi45/more_probe
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from visual_rft.data.answer import answer_text
from visual_rft.data.jsonl import read_samples
from visual_rft.data.types import Sample
from visual_rft.models.loading import coord_convention, load_model, load_processor, model_family
from visual_rft.recipes.answer_reads import box_ends, digit_targets
from visual_rft.recipes.base_model import THINK

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ scripts, run as scripts or loaded
from attention_probe import teacher_forced  # noqa: E402


class Forced(NamedTuple):
    """One teacher-forced forward of a sample's prompt and reference answer."""

    ids: torch.Tensor  # [S] the prompt's and the answer's tokens
    n: int  # the prompt's tokens
    answer: str  # the reference answer as fed (then <|im_end|>)
    logits: torch.Tensor  # [S, V]


@torch.no_grad()
def forced_answer(model, processor, sample: Sample, convention: str, think: str) -> Forced:
    """The sample's reference answer, with the think the model was trained to write, fed after its prompt
    (`teacher_forced`): one forward, read for the closes and for the digits."""
    inputs, frame = teacher_forced(model, processor, sample, convention, think)
    ids = inputs["input_ids"][0]  # [S]
    answer = answer_text(sample, frame, think)  # as teacher_forced feeds it, then <|im_end|>
    n = len(ids) - len(processor.tokenizer(answer + "<|im_end|>", add_special_tokens=False)["input_ids"])
    return Forced(ids, n, answer, model(**inputs).logits[0])


def close_margins(forced: Forced, sample: Sample, tok) -> list[tuple[int, bool, float]]:
    """(box index j, another box follows, logit("},") - logit("}")) at the position that predicts each box's close
    in the sample's reference answer."""
    more, last = tok.convert_tokens_to_ids("},"), tok.convert_tokens_to_ids("}")
    ends = box_ends(forced.answer, tok)
    out = []
    for j, t in enumerate(ends):
        q = forced.n + t - 1  # it predicts the close
        if int(forced.ids[q + 1]) != (more if j < len(ends) - 1 else last):
            raise ValueError(f"{sample.id}: box {j}'s close is not where the answer's tokens put it")
        out.append((j, j < len(ends) - 1, float(forced.logits[q, more] - forced.logits[q, last])))
    return out


class Read(NamedTuple):
    """One answer token that reads a box's object (`box_digits`)."""

    box: int  # j: the answer's j-th box (from 0)
    first: bool  # the first of the box's digits (of its place's words, for a place)
    nll: float
    right: bool  # the model's argmax is the token
    place: bool  # a word of the box's place in the think, not a digit
    token: int  # its index among the answer's tokens (the prompt after the image of one length: its distance)


def box_digits(forced: Forced, sample: Sample, tok) -> list[Read]:
    """Each token of the sample's reference answer that reads box j's object: its digits, and the words of its place
    when the think names the boxes' places (`sft.detection_think` with `{region}`), which come first."""
    targets = digit_targets(forced.answer, tok, list(range(len(sample.target.boxes))))  # [T] box per token
    logp = forced.logits.log_softmax(-1)  # [S, V]
    out, seen = [], set()
    for t, j in enumerate(targets):
        if j >= 0:
            q = forced.n + t - 1  # it predicts token t
            token = int(forced.ids[q + 1])
            place = not any(ch.isdigit() for ch in tok.decode([token]))
            first = (j, place) not in seen
            out.append(Read(j, first, -float(logp[q, token]), int(logp[q].argmax()) == token, place, t))
            seen.add((j, place))
    return out


def digits_by_box(rows: list[Read], place: bool = False) -> dict[int, dict]:
    """Per box number (1, 2, ...): its digit tokens' (`place`: its place's words') mean NLL, the share right, and
    the share of first digits (first words) right."""
    rows = [r for r in rows if r.place == place]
    out = {}
    for j in sorted({r.box for r in rows}):
        box = [r for r in rows if r.box == j]
        out[j + 1] = {
            "NLL": float(np.mean([r.nll for r in box])),
            "right": float(np.mean([r.right for r in box])),
            "first right": float(np.mean([r.right for r in box if r.first])),
            "boxes": sum(r.first for r in box),
        }
    return out


def first_digit_by_start(rows: list[Read], box: int) -> dict[int, list]:
    """For the `box`-th box (from 1): {the answer token its first digit stands at: [the share of first digits right,
    how many]}. Box 1 starts where the think leaves it; a later box further on by the tokens of the boxes before it,
    which their digits' count varies: whether a box is read at some offsets and not at others."""
    at = defaultdict(list)
    for r in rows:
        if r.box == box - 1 and r.first and not r.place:
            at[r.token].append(r.right)
    return {t: [float(np.mean(v)), len(v)] for t, v in sorted(at.items())}


def auc(more: list[float], last: list[float]) -> float | None:
    """The share of (more, last) pairs whose margins rank more above last (ties count half); None: a side empty."""
    if not more or not last:
        return None
    m, s = np.array(more)[:, None], np.array(last)[None, :]
    return float(np.mean((m > s) + 0.5 * (m == s)))


def probe_model(model_dir: Path, samples: list[Sample], think: str) -> dict:
    model = load_model(model_dir, device="cpu", dtype="fp32")
    processor = load_processor(model_dir)
    convention = coord_convention(model_family(model.config))
    rows, digits = [], []
    for s in samples:
        if not s.target.boxes:
            continue
        forced = forced_answer(model, processor, s, convention, think)
        rows += close_margins(forced, s, processor.tokenizer)
        if len(s.target.boxes) > 1:
            digits += box_digits(forced, s, processor.tokenizer)
    more = [m for _, follows, m in rows if follows]
    last = [m for _, follows, m in rows if not follows]
    first_more = [m for j, follows, m in rows if j == 0 and follows]
    first_last = [m for j, follows, m in rows if j == 0 and not follows]
    return {
        "closes (more / last)": [len(more), len(last)],
        "AUC": auc(more, last),
        "AUC first close": auc(first_more, first_last),
        "more said (more / last)": [float(np.mean(np.array(v) > 0)) if v else None for v in (more, last)],
        "digits by box": digits_by_box(digits),
        "places by box": digits_by_box(digits, place=True),
        "box 1 first digit by start": first_digit_by_start(digits, 1),
        "box 2 first digit by start": first_digit_by_start(digits, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", type=Path, required=True, help="model folders")
    ap.add_argument("--data", type=Path, required=True, help="held-out detection queries")
    ap.add_argument("--out", type=Path, required=True, help="folder for more_probe.json")
    ap.add_argument("--think", default=THINK, help="the think text the models were trained to write")
    args = ap.parse_args()
    samples = read_samples(args.data)
    result = {str(m): probe_model(m, samples, args.think) for m in args.models}
    for m, r in result.items():
        print(m, json.dumps(r), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "more_probe.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
