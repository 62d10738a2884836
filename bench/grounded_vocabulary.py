"""A grounded vocabulary: a model whose attribute words' embeddings start where its tower puts what they name.

A real VLM's language model knows its words before it sees an image, and its projector is trained to write
image tokens in that language's space. The tiny base's language model starts from random weights beside a
tower trained alone (stage 1), so "purple" in the question and a purple object's tokens share no direction,
and the heads must learn to match the two spaces before they can pick the asked object (RESULTS.md sections 13-30:
thousands of steps). Here the words are given the tower's directions before the language model trains:

    v_o            = mean of the merged image tokens whose cell object o owns (the frozen tower's output, each
                     token scaled to unit RMS, as the language model's first norm sees it)
    prototype(w)   = (C + shrink * I)^-1 (mean of v_o over the objects that word w names - mean over all objects)
    embedding(w)  += gain * mean row norm * prototype(w) / |prototype(w)|

for each colour and shape word, "digit" and the digit values (a shape object has its colour and shape, a digit
its colour, "digit" and its value), in each spelling the tokenizer keeps as one token (" purple" inside a
question, "purple" right after "<answer>"). C is the objects' covariance: the prototype is the direction whose
dot product with an object's token tells word w's objects from the rest (a linear discriminant), not the raw mean
difference, which the big shape and digit directions dominate (colour's is a fifth of theirs, and digits 5 and 6
differ by a hair). The embeddings are tied to the output head, so the same rows score those words in answers.
The model stays a plain Qwen2.5-VL: only rows of its embedding change.

Written as an ordinary model folder, e.g. a `vrft world pretrain` run's init/ (a run whose init/ exists starts
from it; with `vision.steps=0` its first SFT stage trains from these embeddings). RESULTS.md section 31: on the
twelve-head chain's batches, no faster to the pick than the random embeddings, so not in the recipe.

    python bench/grounded_vocabulary.py --model runs/h12_chain/init \
        --samples runs/h12_chain/world/grd_base_train.jsonl --out runs/gw_chain/init
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import torch

from visual_rft.data.jsonl import read_samples
from visual_rft.data.types import Sample
from visual_rft.models.forward import encode_images
from visual_rft.models.inputs import open_images
from visual_rft.models.loading import load_model, load_processor
from visual_rft.world.dense import object_cells

SHRINK = 0.1
"""The covariance's shrinkage toward the identity, a share of its mean variance (small directions are not blown up)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="the model folder (its tower trained)")
    parser.add_argument("--samples", type=Path, required=True, help="world samples with meta.objects (JSONL)")
    parser.add_argument("--n", type=int, default=1000, help="measure the prototypes on the first N samples")
    parser.add_argument("--gain", type=float, default=2.0, help="each row's move, times the mean row norm")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if (args.out / "config.json").exists():
        raise SystemExit(f"{args.out} already holds a model; remove it or choose another --out")
    print(ground_vocabulary(args.model, args.out, read_samples(args.samples)[: args.n], args.gain))


def ground_vocabulary(model_dir: Path, out_dir: Path, samples: list[Sample], gain: float) -> Path:
    """Write to `out_dir` the model of `model_dir` with its attribute words' embeddings moved toward their
    prototypes (module docstring), measured on `samples` (world samples with `meta.objects`); returns
    `out_dir`."""
    if not samples:
        raise ValueError("ground_vocabulary: no samples with meta.objects to measure the prototypes on")
    model = load_model(model_dir, dtype="fp32", device="cpu", attn_implementation="sdpa")
    processor = load_processor(model_dir)
    prototypes = word_prototypes(model, processor, samples)
    embed = model.get_input_embeddings().weight  # [V, H]
    scale = gain * embed.norm(dim=1).mean()
    with torch.no_grad():
        for word, proto in prototypes.items():
            for token in word_tokens(processor.tokenizer, word):
                embed[token] += scale * proto / proto.norm()
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir


def word_tokens(tokenizer, word: str) -> list[int]:
    """The token ids of the word's spellings (bare, and after a space) that the tokenizer keeps whole; a word
    split into pieces is left alone."""
    spellings = (tokenizer(s, add_special_tokens=False)["input_ids"] for s in (word, " " + word))
    return [ids[0] for ids in spellings if len(ids) == 1]


def attribute_words(obj: dict) -> list[str]:
    """The words that name an object of `meta.objects`: colour and shape, or colour, "digit" and its value."""
    if obj["kind"] == "digit":
        return [obj["colour"], "digit", str(obj["digit"])]
    return [obj["colour"], obj["shape"]]


def word_prototypes(model, processor, samples: list[Sample]) -> dict[str, torch.Tensor]:
    """{word: [H] prototype}: the discriminant of the objects a word names against all objects, on their unit-RMS
    merged tokens (module docstring; objects that own no cell are skipped)."""
    ip = processor.image_processor
    by_word: dict[str, list[torch.Tensor]] = defaultdict(list)
    every: list[torch.Tensor] = []
    with torch.no_grad():
        for sample in samples:
            inputs = ip(images=open_images(sample)[:1], return_tensors="pt")
            tokens = encode_images(model, inputs["pixel_values"], inputs["image_grid_thw"]).tokens  # [N, H]
            tokens = tokens * tokens.pow(2).mean(-1, keepdim=True).rsqrt()  # [N, H] each at unit RMS
            _, h, w = inputs["image_grid_thw"][0].tolist()
            owners, _ = object_cells(sample, h, w, ip.patch_size, ip.merge_size)  # [N]
            owners = torch.from_numpy(owners)
            for i, obj in enumerate(sample.meta["objects"]):
                if not bool((owners == i).any()):
                    continue
                v = tokens[owners == i].mean(0)  # [H]
                every.append(v)
                for word in attribute_words(obj):
                    by_word[word].append(v)
    if not every:
        raise ValueError("ground_vocabulary: no object of the samples owns an image cell")
    objects = torch.stack(every)  # [O, H]
    mean = objects.mean(0)  # [H]
    cov = torch.cov(objects.T)  # [H, H]
    shrunk = cov + SHRINK * cov.diagonal().mean() * torch.eye(len(mean))  # [H, H]
    return {
        w: torch.linalg.solve(shrunk, torch.stack(vs).mean(0) - mean) for w, vs in sorted(by_word.items())
    }


if __name__ == "__main__":
    main()
