"""Which words of a composed class name does a model get right? Shade, colour and shape, one by one.

The world's few-shot classes are "shade colour shape" ("dark green square"). An accuracy of 10% on 24
classes can mean a model that reads every attribute a little, or one that reads the shade perfectly and
guesses the rest (1 x 1/4 x 1/3 = 8%). This reads the completions an evaluation wrote
(`eval/<model>/completions.jsonl`) and prints, per file, the share of test queries whose answer has each
word of the true name right, position by position, next to what guessing gives, and how many distinct
answers the model gave.

    python bench/attribute_accuracy.py runs/bench/classification/4shot/seed*/eval/*/completions.jsonl
"""

from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path

from visual_rft.data.answer import class_answer, normalize_class


def attribute_accuracy(path: Path) -> dict:
    """{'n', 'words': [share right at word 0, 1, ...], 'exact', 'distinct'} over one completions file."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not rows:
        raise ValueError(f"{path}: no completions")
    width = max(len(normalize_class(r["sample"]["target"]["label"]).split()) for r in rows)
    right = [0] * width
    exact = 0
    answers = collections.Counter()
    for r in rows:
        truth = normalize_class(r["sample"]["target"]["label"]).split()
        guess = (class_answer(r["completion"]) or "").split()
        answers[" ".join(guess)] += 1
        exact += guess == truth
        if len(guess) == len(truth):
            for i, (t, g) in enumerate(zip(truth, guess)):
                right[i] += t == g
    n = len(rows)
    return {"n": n, "words": [r / n for r in right], "exact": exact / n, "distinct": len(answers)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="+", type=Path, help="completions.jsonl files of classification evals")
    args = parser.parse_args()
    print("| file | n | exact | word 1 | word 2 | word 3 | distinct answers |")
    print("|---|---|---|---|---|---|---|")
    for path in args.files:
        a = attribute_accuracy(path)
        words = " | ".join(f"{100 * w:.0f}" for w in (a["words"] + [float("nan")] * 3)[:3])
        print(f"| {path} | {a['n']} | {100 * a['exact']:.0f} | {words} | {a['distinct']} |")


if __name__ == "__main__":
    main()
