"""A world folder whose classification few-shot files hold the base classes, for `vrft world fewshot`.

Does RFT beat SFT when the base model can already tell the classes apart a little? The few-shot classes
of the world (`cls_fewshot`) start at 0% for the shipped base, so the exact-match reward never fires. The
51 base classes start at 16% (from pre-training on other images of them). This writes, into OUT:
cls_fewshot_pool.jsonl (4 fresh images per base class, a stream apart from the pre-training set),
nested cls_fewshot_{1,2,4}shot.jsonl from it, and cls_fewshot_test.jsonl = the world's cls_base_test
(same seed and name, so the same 200 images). Then:

    python bench/seen_classes_world.py /tmp/seen
    vrft world fewshot task=classification shots=2 world_dir=/tmp/seen out_dir=/tmp/seen_run seed=0
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from visual_rft import world as W
from visual_rft.data.jsonl import read_samples
from visual_rft.data.splits import write_nested


def seen_classes_world(out: Path, seed: int = 0, shots: tuple[int, ...] = (1, 2, 4)) -> dict[str, Path]:
    classes = W.CLASSIFICATION_BASE
    pool = W.build(
        "classification", out, max(shots) * len(classes), seed=seed, categories=classes, name="cls_seen_pool"
    )
    paths = {
        f"{k}shot": p
        for k, p in write_nested(read_samples(pool), out, "cls_fewshot", shots, seed=seed).items()
    }
    test = W.build("classification", out, 200, seed=seed, categories=classes, name="cls_base_test")
    (out / "cls_fewshot_test.jsonl").write_text(test.read_text())
    (out / "world.json").write_text(json.dumps({"classification_fewshot": classes, "seed": seed}) + "\n")
    return paths


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0, help="seed of the world the base was trained on")
    args = parser.parse_args()
    print(seen_classes_world(args.out, args.seed))
