"""Run a training or a bench script with the question before the image in the user turn.

The library's one prompt layout (`visual_rft.data.prompts.messages`) puts the image first, as Qwen-VL's
examples do; the question then comes after the image tokens, which cannot attend to it. This runs
`vrft sft CONFIG [overrides]` or a bench script with the text first (a patch of this process's
`visual_rft.models.inputs.messages`, through which every prompt is built), so the image tokens can read
the question: RESULTS.md section 13's test of whether that helps the language model pick the asked object,
and section 29's, through the whole locate stage (the recipe through `bench/staged_base.py`, and the models it
trains evaluated by the CLI run as a script, so training and evaluation share the layout).

    python bench/text_first.py sft runs/locA/locate/config.yaml model.path=MODEL data.train=FILE \
        run.output_dir=runs/attr/qfirst run.steps=1000
    python bench/text_first.py bench/attribute_probe.py eval --data FILE --out DIR --models MODEL
    python bench/text_first.py bench/staged_base.py --out runs/tf_chain [PretrainConfig overrides]
    python bench/text_first.py visual_rft/cli.py eval NAME=MODEL --data FILE --out DIR
"""

from __future__ import annotations

import runpy
import sys

import visual_rft.models.inputs as inputs
from visual_rft.config import SFTTrainConfig, load_config
from visual_rft.data.prompts import build_prompt
from visual_rft.sft.trainer import train_sft


def text_first(sample, frame, short: bool = False) -> list[dict]:
    """Chat messages with the prompt text, then the image(s). Short prompts (`sft.short_prompts`) are refused:
    their kept positions (`models.inputs.instruction_gaps`) assume the text ends the turn."""
    if short:
        raise ValueError("bench/text_first.py: sft.short_prompts is not supported with the question first")
    content = [{"type": "text", "text": build_prompt(sample, frame)}]
    content += [{"type": "image"} for _ in sample.images]
    return [{"role": "user", "content": content}]


def main(argv: list[str]) -> None:
    if not argv:
        raise SystemExit(__doc__)
    inputs.messages = text_first
    if argv[0] == "sft":
        print(f"run folder: {train_sft(load_config(SFTTrainConfig, argv[1], argv[2:]))}")
    else:
        sys.argv = argv
        runpy.run_path(argv[0], run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
