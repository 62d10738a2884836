"""Does the language model know whether the asked category is in the image? A linear probe per layer.

Detection taught from grounding's pick answers "No Objects" to nearly every question, present or not (RESULTS.md
section 31). Either the model cannot tell whether the category is there, or it can and the answer does not use
it. For each held-out scene (the scenes of the grounding queries in --data) that shows a base detection
category, two detection questions: one for a base category it shows (its reference answer every instance's
box) and one for a base category it does not show ("No Objects"), each teacher-forced with the think text the
models were trained to write. At the `<answer>` token, the position that predicts the answer's first token (a
box or "No"), this reads:

- `probe`: per decoder layer's input (and the last output), a logistic-regression probe of present / absent,
  fitted on the pairs of the first 70% of the scenes, scored on the rest. Each scene is asked once present and
  once absent, and each category is asked present in some scenes and absent in others, so neither the scene
  nor the question alone tells them apart (the scored rows' majority is 0.5): a probe above it reads whether
  the question matches the image.
- `readout AUC`: the model's own answer there, the logit of the first token of "No Objects" minus that of the
  present answer's first token; the share of (present, absent) pairs of the scored scenes it ranks the right
  way round (0.5: it does not tell them apart; 1: a threshold would).

    python bench/presence_probe.py --models runs/more_bn6/locate2/checkpoint-2000/model \\
        --data runs/held23_400/grounding_test.jsonl --out runs/presence
    python bench/presence_probe.py --data runs/held23_400/grounding_test.jsonl --questions runs/presence/test.jsonl

With --questions it writes the pairs' questions instead, as yes / no questions (PRESENCE_PROBLEM, classification;
`--form yes-no`) or as the detection questions themselves (`--form detection`, or `detection-unquoted` without the
quotes around the category): data for `vrft eval` and
`bench/presence_binding.py`, to see whether the model can learn to tell.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from visual_rft.data.jsonl import read_samples, write_samples
from visual_rft.data.types import ClassTarget, Sample
from visual_rft.models.loading import coord_convention, load_model, load_processor, model_family
from visual_rft.recipes.base_model import THINK
from visual_rft.recipes.pretrain_samples import presence_pairs
from visual_rft.world import DETECTION_BASE

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ scripts, run as scripts or loaded
from attention_probe import teacher_forced  # noqa: E402
from query_probe import probe  # noqa: E402

PRESENCE_PROBLEM = "Is there a {category} in the image? Answer yes or no."
"""`--questions`: the pairs asked as a yes / no question."""
FORMS = ("yes-no", "detection", "detection-unquoted")
"""--questions' forms: PRESENCE_PROBLEM, detection's question, or detection's without the quotes around the category
(the tiny tokenizer writes `'purple` as `'` + `purple`, not the ` purple` of the other questions)."""
TRAIN_SHARE = 0.7
"""The share of the scenes whose pairs fit the probes; the rest score them."""


def presence_questions(pairs: list[tuple[Sample, Sample]]) -> list[Sample]:
    """Each pair's two categories asked as PRESENCE_PROBLEM (classification; "yes" for the present one, "no" for
    the absent one), on the same scenes, with the same `meta`: data to teach or test whether the category is
    there."""
    return [
        replace(
            s,
            id=f"{s.id}-yn",
            task="classification",
            problem=PRESENCE_PROBLEM.format(category=s.target.category),
            target=ClassTarget(label="yes" if s.target.boxes else "no"),
        )
        for pair in pairs
        for s in pair
    ]


@torch.no_grad()
def answer_state(
    model, processor, sample: Sample, convention: str, think: str
) -> tuple[np.ndarray, np.ndarray, int]:
    """(`x` [layers + 1, H] the residual stream entering each decoder layer and the last output at the `<answer>`
    token, `logits` [V] the model's prediction there, the id of the reference answer's first token)."""
    inputs, _ = teacher_forced(model, processor, sample, convention, think)
    ids = inputs["input_ids"][0]  # [S]
    out = model(**inputs, output_hidden_states=True)
    start = int((ids == processor.tokenizer.convert_tokens_to_ids("<answer>")).nonzero()[-1])
    hidden = torch.stack(out.hidden_states)[:, 0, start]  # [layers + 1, H]
    return hidden.float().numpy(), out.logits[0, start].float().numpy(), int(ids[start + 1])


def probe_model(model_dir: Path, pairs: list[tuple[Sample, Sample]], think: str) -> dict:
    """Per layer the presence probe; the readout AUC; the pairs' count."""
    model = load_model(model_dir, device="cpu", dtype="fp32")
    processor = load_processor(model_dir)
    convention = coord_convention(model_family(model.config))
    rows = []
    margins = []  # per pair: (present's, absent's) logit of "No" minus that of the box's first token
    for i, pair in enumerate(pairs):
        states = [answer_state(model, processor, s, convention, think) for s in pair]
        no_id, box_id = states[1][2], states[0][2]
        margins.append([float(logits[no_id] - logits[box_id]) for _, logits, _ in states])
        rows += [{"x": x, "present": bool(s.target.boxes), "query": i} for s, (x, _, _) in zip(pair, states)]
    n_train = int(TRAIN_SHARE * len(pairs))
    held = np.array(margins[n_train:])  # [pairs, 2]: present, absent
    auc = float(np.mean(held[:, 1][None, :] > held[:, 0][:, None]))  # absent says "No" more than present
    layers = rows[0]["x"].shape[0]
    return {
        "pairs": len(pairs),
        "readout AUC": round(auc, 3),
        "No above the box (present / absent)": [round(float(np.mean(held[:, k] > 0)), 3) for k in (0, 1)],
        **{f"layer {i}": probe(rows, i, "present", n_train) for i in range(layers)},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", type=Path, default=[], help="model folders")
    ap.add_argument("--data", type=Path, required=True, help="held-out grounding queries (their scenes)")
    ap.add_argument("--out", type=Path, help="folder for presence_probe.json")
    ap.add_argument(
        "--questions", type=Path, help="write the pairs' questions to this JSONL instead of probing"
    )
    ap.add_argument("--form", choices=FORMS, default="yes-no", help="--questions' form")
    ap.add_argument("--n", type=int, default=400, help="scenes, at most")
    ap.add_argument("--seed", type=int, default=0, help="the draw of the asked categories")
    ap.add_argument("--think", default=THINK, help="the think text the models were trained to write")
    args = ap.parse_args()
    pairs = presence_pairs(read_samples(args.data)[: args.n], DETECTION_BASE, args.seed)
    if args.questions:
        questions = (
            presence_questions(pairs) if args.form == "yes-no" else [s for pair in pairs for s in pair]
        )
        if args.form == "detection-unquoted":  # the category's words as every other question spells them
            questions = [replace(s, problem=s.problem.replace("'", "")) for s in questions]
        write_samples(args.questions, questions)
        print(f"{2 * len(pairs)} questions of {len(pairs)} scenes: {args.questions}")
        return
    if not args.models or args.out is None:
        ap.error("--models and --out are needed to probe (or --questions to write the questions)")
    result = {}
    for m in args.models:
        result[str(m)] = r = probe_model(m, pairs, args.think)
        layers = "; ".join(f"{k} {v['acc']}" for k, v in r.items() if k.startswith("layer"))
        print(m, f"pairs {r['pairs']}, readout AUC {r['readout AUC']},", layers, flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "presence_probe.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
