"""Where does a classification answer read each word of the class name? Per word, per layer, teacher-forced.

A base can know a class's colour in its image tokens and still not write it (RESULTS.md section 23): the answer
must fetch it. On held-out classification images (one big base-class object, world seed --seed, the reference
answer teacher-forced with the think text the model was trained to write), at the position that predicts each
word of the class name (shade when the name has one, colour, shape):

- `chosen`: how often the model's own next-token logits rank the right word first among that word's options
  (the vocabulary's shades, colours or shapes): the answer as the model would write it, given the words before;
- `probe layer i`: a logistic-regression probe of the residual stream entering decoder layer i (the last: the
  final output), fitted on the first 70% of the images and scored on the rest: what that position holds;
- `object attention`: per layer and head, the share of the position's attention that falls on the object's
  image tokens (`world.dense.box_owners`), and `image attention` on all image tokens: where it looks.

    python bench/class_reading.py --models runs/dfill/base runs/tok2/locate2/checkpoint-3000/model --out runs/cread
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from visual_rft.data.types import ClassTarget, Sample
from visual_rft.models.forward import encode_images
from visual_rft.models.inputs import open_images
from visual_rft.models.loading import coord_convention, load_model, load_processor, model_family
from visual_rft.recipes.base_model import THINK
from visual_rft.world import WorldConfig
from visual_rft.world.dense import box_owners
from visual_rft.world.scene import scene_graph
from visual_rft.world.tasks import classification_scene
from visual_rft.world.vocab import CLASSIFICATION_BASE, CLASSIFICATION_PROBLEM, COLOURS, SHADES, SHAPES

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ scripts, run as scripts or loaded
from attention_probe import teacher_forced  # noqa: E402
from query_probe import probe  # noqa: E402

OPTIONS = {"shade": SHADES, "colour": tuple(COLOURS), "shape": tuple(SHAPES)}
"""Each word of a class name and the words it is chosen from."""


def held_out(out: Path, n: int, seed: int, world: WorldConfig) -> list[Sample]:
    """`n` classification samples of the base classes in turn, drawn from PCG64([seed, 3, i]) into out/, each
    with its object in `meta.objects` (as grounding samples list theirs) so its image tokens can be found."""
    out.mkdir(parents=True, exist_ok=True)
    samples = []
    for i in range(n):
        label = CLASSIFICATION_BASE[i % len(CLASSIFICATION_BASE)]
        image, scene = classification_scene(np.random.Generator(np.random.PCG64([seed, 3, i])), world, label)
        path = out / f"class-{i:05d}.png"
        image.save(path)
        meta = {"split": "base", "objects": scene_graph(scene)}
        samples.append(
            Sample(f"class-{i:05d}", [str(path)], "classification", CLASSIFICATION_PROBLEM, ClassTarget(label),
                   scene.width, scene.height, meta)
        )  # fmt: skip
    return samples


def words_of(label: str) -> dict[str, str]:
    """A base class name's words by role: 'red star' -> colour and shape; 'dark red star' -> shade too."""
    words = label.split()
    return dict(zip(("shade", "colour", "shape")[3 - len(words) :], words))


def word_positions(tokenizer, ids: list[int], answer_start: int, label: str) -> dict[str, int]:
    """The index of each word's first token in `ids`, the answer's label starting after position `answer_start`
    (the `<answer>` token): found by decoding the answer one token more at a time."""
    if not tokenizer.decode(ids[answer_start + 1 :]).lstrip().startswith(label):
        raise ValueError(f"class_reading: the answer does not spell {label!r}")
    words, starts, offset = words_of(label), {}, 0
    for role, word in words.items():
        offset = label.index(word, offset)
        starts[role] = offset
        offset += len(word)
    found, text = {}, ""
    for p in range(answer_start + 1, len(ids)):
        before = len(text.lstrip())
        text = tokenizer.decode(ids[answer_start + 1 : p + 1])
        for role, start in starts.items():
            if role not in found and len(text.lstrip()) > start >= before:
                found[role] = p
        if len(found) == len(starts):
            break
    return found


def option_ids(tokenizer, prefix: str, options: tuple[str, ...]) -> list[int]:
    """The first token of each option written after `prefix` (the answer text before the word, a space between
    them); they must differ, or the model's pick among them could not be read from one position."""
    base = len(tokenizer.encode(prefix))
    gap = " " if prefix else ""
    ids = [tokenizer.encode(prefix + gap + word)[base] for word in options]
    if len(set(ids)) < len(ids):
        raise ValueError(f"class_reading: {options} share a first token after {prefix!r}")
    return ids


@torch.no_grad()
def readings(model_dir: Path, samples: list[Sample], think: str) -> list[dict]:
    """Per sample and word of its class name: `x` [layers + 1, H] the residuals at the position predicting the
    word, `attn` [layers, heads, 2] (object, image) attention shares there, `label`, `chosen` (the model's pick
    among the options), `role`, `query` (the sample's index)."""
    model = load_model(model_dir, device="cpu", dtype="fp32", attn_implementation="eager")
    processor = load_processor(model_dir)
    tokenizer = processor.tokenizer
    convention = coord_convention(model_family(model.config))
    rows = []
    for i, sample in enumerate(samples):
        inputs, frame = teacher_forced(model, processor, sample, convention, think)
        ids = inputs["input_ids"][0].tolist()  # [S]
        out = model(**inputs, output_hidden_states=True, output_attentions=True)
        hidden = torch.stack(out.hidden_states)[:, 0]  # [layers+1, S, H]
        attn = torch.stack(out.attentions)[:, 0]  # [layers, heads, S, S]
        image = [p for p, t in enumerate(ids) if t == model.config.image_token_id]  # [n]
        _, h, w = inputs["image_grid_thw"][0].tolist()
        merge = processor.image_processor.merge_size
        scale = frame.resized[0] / frame.size[0] if frame.resized else 1.0
        owners = box_owners([o["box"] for o in sample.meta["objects"]], h // merge, w // merge, scale)  # [n]
        on_object = [p for p, o in zip(image, owners) if o >= 0]
        start = len(ids) - 1 - ids[::-1].index(tokenizer.convert_tokens_to_ids("<answer>"))
        label, words = sample.target.label, words_of(sample.target.label)
        for role, p in word_positions(tokenizer, ids, start, label).items():
            prefix = tokenizer.decode(ids[start + 1 : p])  # the answer before the word
            cands = option_ids(tokenizer, prefix, OPTIONS[role])
            a = attn[:, :, p - 1]  # [layers, heads, S] the position that predicts the word
            rows.append({
                "x": hidden[:, p - 1].float().numpy(),
                "attn": torch.stack([a[..., on_object].sum(-1), a[..., image].sum(-1)], -1).numpy(),
                "label": words[role],
                "chosen": OPTIONS[role][int(out.logits[0, p - 1, cands].argmax())],
                "role": role,
                "query": i,
            })  # fmt: skip
    return rows


@torch.no_grad()
def variance_shares(model_dir: Path, samples: list[Sample]) -> dict[str, float]:
    """Per word of the class names (a two-word name's shade is "mid"), the share of the object tokens' variance
    that the word's value explains, the tokens RMS-normalised (the module docstring)."""
    model, processor = load_model(model_dir, device="cpu", dtype="fp32"), load_processor(model_dir)
    tokens, labels = [], []
    for sample in samples:
        inputs = processor.image_processor(images=[open_images(sample)[0]], return_tensors="pt")
        grid = inputs["image_grid_thw"]  # [1, 3]
        t = encode_images(model, inputs["pixel_values"], grid).tokens.float()  # [n, H]
        t = t / t.pow(2).mean(-1, keepdim=True).sqrt()  # [n, H]
        _, h, w = grid[0].tolist()
        merge = processor.image_processor.merge_size
        scale = w * processor.image_processor.patch_size / sample.width
        owners = box_owners([o["box"] for o in sample.meta["objects"]], h // merge, w // merge, scale)  # [n]
        tokens.append(t[torch.from_numpy(owners >= 0)].numpy())
        words = {"shade": "mid", **words_of(sample.target.label)}
        labels += [words] * int((owners >= 0).sum())
    x = np.concatenate(tokens)  # [N, H]
    return {role: round(explained_share(x, np.array([w[role] for w in labels])), 3) for role in OPTIONS}


def explained_share(x: np.ndarray, y: np.ndarray) -> float:
    """The share of the rows' variance (x [N, H]) that their labels (y [N]) explain: the between-class sum of
    squares over the total one, both about the mean of all rows."""
    x = x - x.mean(0)  # [N, H]
    between = sum(float((x[y == v].mean(0) ** 2).sum()) * int((y == v).sum()) for v in set(y))
    return between / float((x**2).sum())


def summarise(rows: list[dict], n_train: int) -> dict:
    """Per word: `chosen` accuracy on the scored images, probes per layer, attention shares per layer and head
    (means over every image, rounded)."""
    result = {}
    for role in OPTIONS:
        mine = [r for r in rows if r["role"] == role]
        if not mine:
            continue
        held = [r for r in mine if r["query"] >= n_train]
        attn = np.mean([r["attn"] for r in mine], 0).astype(float)  # [layers, heads, 2]
        result[role] = {
            "chosen": round(float(np.mean([r["chosen"] == r["label"] for r in held])), 3),
            **{f"probe layer {i}": probe(mine, i, "label", n_train) for i in range(mine[0]["x"].shape[0])},
            "object attention": np.round(attn[..., 0], 2).tolist(),
            "image attention": np.round(attn[..., 1], 2).tolist(),
        }
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", type=Path, required=True, help="model folders")
    ap.add_argument("--out", type=Path, required=True, help="folder for the images and class_reading.json")
    ap.add_argument("--seed", type=int, default=31, help="seed of the held-out images")
    ap.add_argument("--n", type=int, default=300, help="images")
    ap.add_argument("--think", default=THINK, help="the think text the models were trained to write")
    ap.add_argument(
        "--digit-fills", action="store_true", help="the world's digits in patterns (none are drawn)"
    )
    args = ap.parse_args()
    samples = held_out(args.out / "held_out", args.n, args.seed, WorldConfig(digit_fills=args.digit_fills))
    result = {}
    for m in args.models:
        result[str(m)] = words = summarise(readings(m, samples, args.think), int(0.7 * args.n))
        for role, r in words.items():
            probes = " ".join(f"{v['acc']}" for k, v in r.items() if k.startswith("probe"))
            print(m, role, "chosen", r["chosen"], "| probes by layer", probes, flush=True)
            print("   object attention by layer, head:", r["object attention"], flush=True)
        words["variance shares"] = shares = variance_shares(m, samples)
        print(m, "object tokens' variance explained by", shares, flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "class_reading.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
