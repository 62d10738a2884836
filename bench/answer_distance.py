"""Whether a base's boxes depend on how far, in RoPE positions, the text stands from the image: grounding
evaluated with the positions of everything after the image (question, instructions, answer) moved `k`
further on, the tokens unchanged (`models.forward.shift_after_image`).

    python bench/answer_distance.py --model runs/X/base --data runs/held23_400/grounding_test.jsonl \
        --out runs/dist_X --shifts -46 -20 0 20 46 80

Why: every grounding prompt of the world has the same length (95-97 tokens after the image) and every
detection prompt 46 more; RESULTS.md section 37 found the pick tied to that distance in training. Writes
OUT/shift<k>/ (completions and metrics, as `vrft eval`) and OUT/shifts.json (`grounding_hits` per shift,
over all queries and per kind).
"""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from grounding_hits import grounding_hits  # noqa: E402

from visual_rft.config import EvalOptions  # noqa: E402
from visual_rft.eval.completions import COMPLETIONS  # noqa: E402
from visual_rft.eval.runner import evaluate_model, load_test_samples  # noqa: E402
from visual_rft.models.loading import load_model, load_processor  # noqa: E402
from visual_rft.models.text_distance import move_text_after_image  # noqa: E402


@contextmanager
def shifted_positions(model, k: int):
    """Within: the model's mRoPE positions of the text after the image are `k` further on. Wraps the instance's
    `get_rope_index`, from which generation takes the prompt's positions once per batch; each decoding step
    continues from the prompt's last position, so the answer moves too."""
    before = vars(model.model).get("get_rope_index")  # a `text_distance` the model holds, else None
    move_text_after_image(model, lambda positions, is_image: [k] * positions.shape[1])
    try:
        yield
    finally:
        if before is None:
            del model.model.get_rope_index  # the class's method again
        else:
            model.model.get_rope_index = before


def hits_by_kind(path: Path, kinds: list[str]) -> dict[str, dict]:
    """`grounding_hits` of a completions file, over all queries and per kind."""
    return {"all": grounding_hits(path), **{kind: grounding_hits(path, kind) for kind in kinds}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--shifts", type=int, nargs="+", default=[0, 46])
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    samples = load_test_samples(args.data, args.limit)
    model = load_model(args.model, dtype="float32", device="cpu").eval()
    processor = load_processor(args.model)
    options = EvalOptions(batch_size=16, max_new_tokens=160, progress=False)
    kinds = sorted({s.meta.get("kind") for s in samples if s.meta.get("kind")})
    table = {}
    for k in args.shifts:
        out = args.out / f"shift{k}"
        with shifted_positions(model, k):
            evaluate_model(
                args.model, samples, out, options, name=f"shift{k}", model=model, processor=processor
            )
        table[k] = hits_by_kind(out / COMPLETIONS, kinds)
        print("shift", k, json.dumps({kind: h["target"] for kind, h in table[k].items()}), flush=True)
    (args.out / "shifts.json").write_text(json.dumps({"hits": table}, indent=1) + "\n")


if __name__ == "__main__":
    main()
