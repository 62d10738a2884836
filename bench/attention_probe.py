"""Does the language model look at the object it was asked about while it answers about that object?

For held-out world grounding queries (kinds --kinds, world --seed) and any other files of questions about
one object of a scene (--data: bench/attribute_probe.py's "what colour is the star?"), the reference answer
is fed in (teacher forcing) and, at every position whose next token is a digit of the answer's box (or a
token of a class answer), each head's attention over the image tokens is split by what the merged cell
shows: the asked object, another object of the scene, or background. A cell belongs to the object whose
box covers most of it (`world.dense.box_owners`: at least 15% of the cell; an object's best-covered cell
always counts), from the samples' `meta.objects`.

Reported per layer and head, averaged over queries: `target`, the share of the head's image attention on
the asked object's cells, and `chance`, that share under uniform attention over the image (the asked
object's cells / all cells); `objects` and `objects_chance`, the same for the cells of any object;
`selectivity`, attention on the asked object / attention on any object, and its chance (the asked
object's cells / all object cells). A head that reads the asked object has `target` well above `chance`;
one that looks at objects but not at the asked one has `selectivity` near its chance. Single-object
scenes show which heads find a lone object; scenes of several show whether those heads pick the asked one.

    python bench/attention_probe.py --models runs/locA/locate/checkpoint-2000/model --out runs/attn
    python bench/attention_probe.py --models MODEL --out runs/attn --kinds --data runs/attr/test/attr_200.jsonl

--hits COMPLETIONS...: instead, for each query of a grounding evaluation of the one model given (its
`completions.jsonl`, e.g. from bench/grounding_hits.py), the selectivity of the last two layers' heads
(mean over heads and digit positions, teacher-forced) beside whether the greedy answer's box hit the asked
object (IoU >= 0.5): acc@0.5 per selectivity bin, to tell picking the object from reading its position,
and the mean selectivity over the queries (held out: the binding's generalisation, against its training value).

    python bench/attention_probe.py --models MODEL --out runs/attn --hits runs/hits/eval/name/m0/completions.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from visual_rft.data.answer import answer_text
from visual_rft.data.boxes import iou
from visual_rft.data.jsonl import read_samples, sample_from_dict
from visual_rft.data.types import Sample
from visual_rft.models.inputs import frames_for, open_images, prompt_texts
from visual_rft.models.loading import coord_convention, load_model, load_processor, model_family
from visual_rft.recipes.base_model import THINK
from visual_rft.world import build
from visual_rft.world.dense import box_owners

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ scripts, run as scripts or loaded
from grounding_hits import answered_box  # noqa: E402

BINS = (0.0, 0.5, 0.8, 0.95, 1.01)
"""Selectivity bins of `hits_by_selectivity`."""


def teacher_forced(processor, sample: Sample, convention: str):
    """(the processor's inputs for the sample's prompt followed by its reference answer, as SFT trains on it;
    the image's coordinate frame)."""
    images = [open_images(sample)]
    frame = frames_for(images, convention, processor)[0]
    text = prompt_texts([sample], [frame], processor)[0] + answer_text(sample, frame, THINK) + "<|im_end|>"
    return processor(images=images[0], text=[text], return_tensors="pt"), frame


def query_attention(model, processor, sample: Sample, convention: str) -> tuple[torch.Tensor, np.ndarray]:
    """([layers, heads, D, n_image] each head's attention over the image tokens, renormalised, at the D
    positions that predict a token of the reference answer's reading: a digit of a box, any token of a
    class name; [n_image] cell owners)."""
    inputs, frame = teacher_forced(processor, sample, convention)
    ids = inputs["input_ids"][0]  # [S]
    with torch.no_grad():
        out = model(**inputs, output_attentions=True)
    attn = torch.stack(out.attentions)[:, 0]  # [layers, heads, S, S]
    image = (ids == model.config.image_token_id).nonzero().squeeze(1)  # [n_image]
    answer_start = int((ids == processor.tokenizer.convert_tokens_to_ids("<answer>")).nonzero()[-1])
    tokens = processor.tokenizer.convert_ids_to_tokens(ids.tolist())
    answer_end = int((ids == processor.tokenizer.convert_tokens_to_ids("</answer>")).nonzero()[-1])
    body = range(answer_start + 1, answer_end)
    read = [p - 1 for p in body if tokens[p].isdigit() or sample.task != "grounding"]  # predict it
    on_image = attn[:, :, read][..., image]  # [layers, heads, D, n_image]
    on_image = on_image / on_image.sum(-1, keepdim=True).clamp_min(1e-12)
    _, h, w = inputs["image_grid_thw"][0].tolist()
    merge = processor.image_processor.merge_size
    scale = frame.resized[0] / frame.size[0] if frame.resized else 1.0
    owners = box_owners([o["box"] for o in sample.meta["objects"]], h // merge, w // merge, scale)
    return on_image, owners


def asked_object(sample: Sample) -> int:
    """The index in `meta.objects` of the object the question is about: a grounding target's box, else
    `meta.box` (bench/attribute_probe.py's questions)."""
    box = sample.target.box.xyxy if sample.task == "grounding" else tuple(sample.meta["box"])
    return next(i for i, o in enumerate(sample.meta["objects"]) if tuple(o["box"]) == tuple(box))


def head_shares(on_image: torch.Tensor, owners: np.ndarray, target: int) -> dict[str, np.ndarray]:
    """Per [layers, heads], averaged over the digit positions: the shares of the image attention on the
    asked object (`target`) and on any object (`objects`), and their chance under uniform attention."""
    is_target = torch.from_numpy(owners == target)  # [n_image]
    is_object = torch.from_numpy(owners >= 0)  # [n_image]
    on_target = on_image[..., is_target].sum(-1).mean(-1)  # [layers, heads]
    on_object = on_image[..., is_object].sum(-1).mean(-1)  # [layers, heads]
    return {
        "target": on_target.numpy(),
        "objects": on_object.numpy(),
        "chance": np.full(on_target.shape, is_target.float().mean().item()),
        "objects_chance": np.full(on_target.shape, is_object.float().mean().item()),
        "selectivity": (on_target / on_object.clamp_min(1e-12)).numpy(),
        "selectivity_chance": np.full(
            on_target.shape, is_target.sum().item() / max(1, is_object.sum().item())
        ),
    }


def probe(model_dir: Path, samples: list[Sample]) -> dict[str, list]:
    """head_shares averaged over the samples, as nested lists [layers][heads]."""
    model = load_model(model_dir, device="cpu", dtype="fp32", attn_implementation="eager")
    processor = load_processor(model_dir)
    convention = coord_convention(model_family(model.config))
    totals: dict[str, np.ndarray] = {}
    for s in samples:
        on_image, owners = query_attention(model, processor, s, convention)
        for k, v in head_shares(on_image, owners, asked_object(s)).items():
            totals[k] = totals.get(k, 0) + v / len(samples)
    return {k: np.round(v, 3).tolist() for k, v in totals.items()}


def summary(shares: dict[str, list]) -> str:
    """Per layer, of all heads: the highest `target / chance`, `objects / objects_chance` and
    `selectivity` (against its chance)."""
    t, c = np.array(shares["target"]), np.array(shares["chance"])  # [layers, heads]
    o, oc = np.array(shares["objects"]), np.array(shares["objects_chance"])  # [layers, heads]
    sel, chance = np.array(shares["selectivity"]), np.array(shares["selectivity_chance"])[0, 0]
    layers = [
        f"L{i} asked object x{(t[i] / c[i]).max():.1f}, any object x{(o[i] / oc[i]).max():.1f}, "
        f"selectivity {sel[i].max():.2f}"
        for i in range(len(t))
    ]
    return "; ".join(layers) + f" (selectivity's chance {chance:.2f})"


def selectivity_hits(model_dir: Path, completions: Path) -> list[tuple[float, float]]:
    """Per query of a grounding eval's completions: (the last two layers' selectivity, mean over heads and
    digit positions under teacher forcing; the IoU of the answered box with the asked object's, 0: none)."""
    model = load_model(model_dir, device="cpu", dtype="fp32", attn_implementation="eager")
    processor = load_processor(model_dir)
    convention = coord_convention(model_family(model.config))
    out = []
    for line in completions.read_text().splitlines():
        row = json.loads(line)
        sample = sample_from_dict(row["sample"])
        on_image, owners = query_attention(model, processor, sample, convention)
        sel = head_shares(on_image[-2:], owners, asked_object(sample))["selectivity"]  # [2, heads]
        box = answered_box(row)
        out.append((float(sel.mean()), iou(box, sample.target.box.xyxy) if box else 0.0))
    return out


def hits_by_selectivity(rows: list[tuple[float, float]]) -> list[dict]:
    """Per selectivity bin (BINS) with queries: n, acc@0.5 and mean IoU."""
    sel, hit = np.array([r[0] for r in rows]), np.array([r[1] for r in rows])
    out = []
    for lo, hi in zip(BINS, BINS[1:]):
        m = (sel >= lo) & (sel < hi)
        if m.any():
            out.append(
                {
                    "selectivity": [lo, min(hi, 1.0)],
                    "n": int(m.sum()),
                    "acc@0.5": float((hit[m] >= 0.5).mean()),
                    "mean_iou": round(float(hit[m].mean()), 3),
                }
            )
    return out


def hits_summary(rows: list[tuple[float, float]]) -> dict:
    """Over all queries: n, the mean selectivity, acc@0.5; and the bins of `hits_by_selectivity`."""
    sel, hit = np.array([r[0] for r in rows]), np.array([r[1] for r in rows])
    return {
        "n": len(rows),
        "mean_selectivity": round(float(sel.mean()), 3),
        "acc@0.5": float((hit >= 0.5).mean()),
        "bins": hits_by_selectivity(rows),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", type=Path, required=True, help="model folders")
    ap.add_argument("--out", type=Path, required=True, help="folder for the held-out sets and probe.json")
    ap.add_argument(
        "--kinds", nargs="*", default=["single", "pair", "name"], help="grounding kinds (none: --data only)"
    )
    ap.add_argument("--data", nargs="*", type=Path, default=[], help="also these files (meta.objects, boxes)")
    ap.add_argument("--seed", type=int, default=23, help="world seed of the held-out queries")
    ap.add_argument("--n", type=int, default=50, help="queries per kind")
    ap.add_argument(
        "--hits", nargs="*", type=Path, default=[], help="grounding completions.jsonl (module doc)"
    )
    args = ap.parse_args()
    result = {}
    if args.hits:
        if len(args.models) != 1:
            ap.error(
                "--hits reads the attention of the one model that wrote the completions: give one --models"
            )
        for path in args.hits:
            result[str(path)] = summary = hits_summary(selectivity_hits(args.models[0], path))
            print(
                path,
                f"n {summary['n']}, mean selectivity {summary['mean_selectivity']}, "
                f"acc@0.5 {summary['acc@0.5']:.2f}",
                *summary["bins"],
                sep="\n  ",
            )
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "hits.json").write_text(json.dumps(result, indent=1))
        return
    built = [
        build("grounding", args.out / "held_out", args.n, seed=args.seed, categories=[k], name=k)
        for k in args.kinds
    ]
    for path in built + args.data:
        kind, samples = path.stem, read_samples(path)[: args.n]
        for m in args.models:
            shares = probe(m, samples)
            result[f"{m} {kind}"] = shares
            print(f"{kind:8s} {m}: {summary(shares)}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "probe.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
