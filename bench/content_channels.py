"""Content channels for the tiny language model's attention: a model folder copied with its RoPE's slowest
frequencies turned nearly still, so that some query-key channels match content wherever the key sits.

    python bench/content_channels.py --model runs/dfill_s1/base --out runs/rope_B/init --still 4
    python bench/content_channels.py --model runs/dfill_s1/base --out runs/rope_C/init --still 4 --sections 2,5,9
    python bench/content_channels.py --model runs/dfill_s1/base --show          # the frequencies only
    python bench/content_channels.py --model runs/rope_A/vision/model --show --jitter 64

With theta 10 (`models/tiny.py`, so that the height and width sections resolve the grid) every frequency of the
5m head turns at least 0.115 rad a position, so no channel of a query-key product is the same for two image
tokens in different cells, nor for one query at another distance from the image (the answer's digits sit
116-134 positions after it): a head that picks the asked object by what it looks like has no channel to match
it in (RESULTS.md section 13 measured the distances; its test, theta 30, still turned 0.04-0.06 rad). Real
Qwen-VL models (theta 1e6) have many nearly still channels. Here the `--still` slowest frequencies (the end of
the width section) are divided by `--factor` through transformers' own "llama3" RoPE (the frequencies whose
wavelength is longer than a cut between the kept and the stilled ones are divided, the others kept): the
model stays a plain Qwen2.5-VL that transformers loads, with only `rope_parameters` changed. `--sections`
sets the mRoPE split (time, height, width) as well, e.g. to give the width section the frequencies that the
height (4 rows of the world's images against 8 columns) can spare. Its weights are
the source's: a language model trained under the old frequencies would see its channels move.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
from pathlib import Path

import torch
from transformers.models.qwen2_5_vl.configuration_qwen2_5_vl import Qwen2_5_VLTextConfig
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLRotaryEmbedding


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="a tiny Qwen2.5-VL model folder")
    parser.add_argument("--out", type=Path, help="where the copy is written")
    parser.add_argument("--still", type=int, default=4, help="how many of the slowest frequencies to still")
    parser.add_argument("--factor", type=float, default=1000.0, help="what those frequencies are divided by")
    parser.add_argument("--sections", help="the mRoPE split, e.g. 2,5,9 (default: the model's)")
    parser.add_argument("--show", action="store_true", help="print the frequencies and write nothing")
    parser.add_argument(
        "--jitter",
        type=int,
        help="also print how much of each channel's query-key match survives moving the text 0..N positions "
        "from the image (sft.position_jitter): 1 for a still channel, near 0 for one that turns a full circle",
    )
    args = parser.parse_args()
    if args.jitter is not None and args.jitter < 0:
        raise SystemExit(f"--jitter {args.jitter}: the most positions a sample moves, 0 or more")
    config = json.loads((args.model / "config.json").read_text())
    sections = [int(n) for n in args.sections.split(",")] if args.sections else None
    text = config["text_config"]
    rope = content_rope(text, args.still, args.factor, sections)
    for name, freqs in (("before", rope_frequencies(text)), ("after", rope_frequencies(text, rope))):
        print(f"{name}: " + " ".join(f"{f:.4g}" for f in freqs.tolist()))
        if args.jitter is not None:
            kept = jitter_coherence(freqs, args.jitter)
            print(f"  kept under 0..{args.jitter}: " + " ".join(f"{k:.2f}" for k in kept.tolist()))
    if args.show:
        return
    if args.out is None:
        raise SystemExit("--out is needed unless --show")
    write_with_rope(args.model, args.out, rope)
    print(f"wrote {args.out}: rope_parameters {rope}")


def content_rope(text_config: dict, still: int, factor: float, sections: list[int] | None = None) -> dict:
    """The text config's rope_parameters as "llama3" RoPE that divides the `still` slowest frequencies by
    `factor` and keeps the others (its cut lies between their wavelengths), with the mRoPE split `sections`
    if given."""
    rope = text_config["rope_parameters"]
    if rope.get("rope_type", "default") != "default":
        raise SystemExit(f"rope_type is {rope['rope_type']!r}; this script starts from the default RoPE")
    head_dim = text_config.get("head_dim") or text_config["hidden_size"] // text_config["num_attention_heads"]
    half = head_dim // 2
    if not 0 < still < half:
        raise SystemExit(f"--still {still}: the head has {half} frequencies; still between 1 and {half - 1}")
    if sections is not None and (len(sections) != 3 or sum(sections) != half or min(sections) < 0):
        raise SystemExit(f"--sections {sections}: three counts (time, height, width) that sum to {half}")
    wavelengths = (2 * math.pi / rope_frequencies(text_config)).tolist()  # (half,) rising
    kept, stilled = wavelengths[half - still - 1], wavelengths[half - still]
    cut = math.floor(stilled)  # transformers wants an integer here
    if cut <= kept:
        raise SystemExit(
            f"no integer wavelength lies between the kept {kept:.2f} and the stilled {stilled:.2f}"
        )
    return {
        **rope,
        "mrope_section": sections or rope["mrope_section"],
        "rope_type": "llama3",
        "factor": factor,
        "original_max_position_embeddings": cut,  # wavelengths above cut / low_freq_factor are divided
        "low_freq_factor": 1.0,
        "high_freq_factor": cut / ((kept + cut) / 2),  # ... those below cut / this (the kept) left exactly
    }


def rope_frequencies(text_config: dict, rope: dict | None = None) -> torch.Tensor:
    """(half head dim,) the radians a position each frequency of the text model turns, from transformers' own
    rotary module for the config (with `rope` in place of its rope_parameters)."""
    text = dict(text_config, **({"rope_parameters": rope} if rope else {}))
    return Qwen2_5_VLRotaryEmbedding(Qwen2_5_VLTextConfig(**text)).inv_freq


def jitter_coherence(freqs: torch.Tensor, most: int) -> torch.Tensor:
    """(half,) |mean over d = 0..most of exp(i * freq * d)|: the share of a channel's query-key match left when
    the text after the image moves a uniform 0..most positions (`sft.position_jitter`), so that a head cannot
    know the rotation its match was made at. 1 for a still channel; 0 where the moves turn a whole circle."""
    d = torch.arange(most + 1, dtype=torch.float64)  # (most + 1,)
    angles = freqs.double()[:, None] * d[None, :]  # (half, most + 1)
    return torch.hypot(angles.cos().mean(dim=1), angles.sin().mean(dim=1))  # (half,)


def write_with_rope(model: Path, out: Path, rope: dict) -> None:
    """Copy the model folder to `out` with the text config's rope_parameters replaced."""
    if (out / "config.json").exists():
        raise SystemExit(f"{out} already holds a model; remove it or choose another --out")
    shutil.copytree(model, out, dirs_exist_ok=True)
    config = json.loads((out / "config.json").read_text())
    config["text_config"]["rope_parameters"] = rope
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")


if __name__ == "__main__":
    main()
