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

--compare A/hits.json B/hits.json: two such probes of the same queries (two models' evaluations of one file),
their first-digit picks query by query: the mean of each, how many queries each picks more sharply, and the
sign test's p; with --data (the evaluated file), the same per query kind (`meta.kind`).

    python bench/attention_probe.py --compare runs/attn_A/hits.json runs/attn_B/hits.json
    python bench/attention_probe.py --compare A/hits.json B/hits.json --data runs/held23_400/grounding_test.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from visual_rft.data.answer import answer_text
from visual_rft.data.boxes import iou
from visual_rft.data.jsonl import read_samples, sample_from_dict
from visual_rft.data.types import Sample
from visual_rft.models.forward import completion_positions, prompt_positions
from visual_rft.models.inputs import frames_for, open_images, prompt_texts
from visual_rft.models.loading import coord_convention, load_model, load_processor, model_family
from visual_rft.recipes.base_model import THINK
from visual_rft.world import build
from visual_rft.world.dense import box_owners

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ scripts, run as scripts or loaded
from grounding_hits import answered_box, sign_test  # noqa: E402

BINS = (0.0, 0.5, 0.8, 0.95, 1.01)
"""Selectivity bins of `hits_by_selectivity`."""


def teacher_forced(model, processor, sample: Sample, convention: str, think: str = THINK):
    """(the processor's inputs for the sample's prompt followed by its reference answer with the think text
    the model was trained to write, as SFT trains on it; the image's coordinate frame). The inputs carry
    `position_ids` [3, 1, S] as training and generation place them: the prompt's by the model's own
    `get_rope_index`, the answer's on from its end. Left to the model, a full sequence would be placed as one
    prompt, and a model with a `text_distance` would put the end of the answer, not of the prompt, there."""
    images = [open_images(sample)]
    frame = frames_for(images, convention, processor)[0]
    answer = answer_text(sample, frame, think) + "<|im_end|>"
    prompt = prompt_texts([sample], [frame], processor)[0]
    inputs = processor(images=images[0], text=[prompt + answer], return_tensors="pt")
    tail = processor.tokenizer(answer, add_special_tokens=False, return_tensors="pt")["input_ids"]  # [1, T]
    n = inputs["input_ids"].shape[1] - tail.shape[1]  # the prompt's tokens
    if not torch.equal(inputs["input_ids"][:, n:], tail):
        raise ValueError(f"{sample.id}: the answer's tokens change when it follows the prompt")
    head = {k: inputs[k][:, :n] for k in ("input_ids", "mm_token_type_ids", "attention_mask")}
    positions = prompt_positions(model, {**head, "image_grid_thw": inputs["image_grid_thw"]})  # [3, 1, n]
    rest = completion_positions(positions.amax(dim=(0, 2)) + 1, 1, tail.shape[1])  # [3, 1, T]
    inputs["position_ids"] = torch.cat([positions, rest], dim=-1)  # [3, 1, S]
    return inputs, frame


def query_attention(
    model, processor, sample: Sample, convention: str, think: str = THINK
) -> tuple[torch.Tensor, np.ndarray]:
    """([layers, heads, D, n_image] each head's attention over the image tokens, renormalised, at the D
    positions that predict a token of the reference answer's reading: a digit of a box, any token of a
    class name; [n_image] cell owners)."""
    inputs, frame = teacher_forced(model, processor, sample, convention, think)
    with torch.no_grad():
        out = model(**inputs, output_attentions=True)
    attn = torch.stack(out.attentions)[:, 0]  # [layers, heads, S, S]
    image, read, owners = reading_cells(model, processor, inputs, frame, sample)
    on_image = attn[:, :, read][..., image]  # [layers, heads, D, n_image]
    on_image = on_image / on_image.sum(-1, keepdim=True).clamp_min(1e-12)
    return on_image, owners


def reading_cells(
    model, processor, inputs, frame, sample: Sample
) -> tuple[torch.Tensor, list[int], np.ndarray]:
    """For a teacher-forced sample (`teacher_forced`'s inputs and frame): ([n_image] the image tokens' positions,
    the D positions that predict a token of the answer's reading, [n_image] the object owning each merged cell)."""
    ids = inputs["input_ids"][0]  # [S]
    image = (ids == model.config.image_token_id).nonzero().squeeze(1)  # [n_image]
    answer_start = int((ids == processor.tokenizer.convert_tokens_to_ids("<answer>")).nonzero()[-1])
    tokens = processor.tokenizer.convert_ids_to_tokens(ids.tolist())
    answer_end = int((ids == processor.tokenizer.convert_tokens_to_ids("</answer>")).nonzero()[-1])
    body = range(answer_start + 1, answer_end)
    read = [p - 1 for p in body if tokens[p].isdigit() or sample.task != "grounding"]  # predict it
    _, h, w = inputs["image_grid_thw"][0].tolist()
    merge = processor.image_processor.merge_size
    scale = frame.resized[0] / frame.size[0] if frame.resized else 1.0
    owners = box_owners([o["box"] for o in sample.meta["objects"]], h // merge, w // merge, scale)
    return image, read, owners


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


def probe(model_dir: Path, samples: list[Sample], think: str = THINK) -> dict[str, list]:
    """head_shares averaged over the samples, as nested lists [layers][heads]."""
    model = load_model(model_dir, device="cpu", dtype="fp32", attn_implementation="eager")
    processor = load_processor(model_dir)
    convention = coord_convention(model_family(model.config))
    totals: dict[str, np.ndarray] = {}
    for s in samples:
        on_image, owners = query_attention(model, processor, s, convention, think)
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


class QueryPick(NamedTuple):
    """One grounding query of `selectivity_hits`."""

    selectivity: float
    """The last two layers' selectivity, mean over heads and the box's digit positions (teacher-forced)."""
    by_digit: tuple[float, ...]
    """The same at each position that predicts a digit of the box, in order (mean over the heads)."""
    iou: float
    """IoU of the greedy answer's box with the asked object's (0: no box)."""
    confusers: str
    """The query's kind and what the scene's other objects share with the asked one (`confusers`)."""
    query: str = ""
    """The sample's id, to pair the queries of two models' probes (`compare_picks`)."""

    @property
    def first(self) -> float:
        """The selectivity at the position that predicts the box's first digit: the pick, made before the
        answer's digits say where the object is (RESULTS.md section 22)."""
        return self.by_digit[0]


def confusers(objects: list[dict], target: int) -> str:
    """What the other objects of a scene share with the asked one: for a digit, whether other digits are
    there; for a shape, whether another has its shape, else its colour, else nothing."""
    asked, others = objects[target], [o for i, o in enumerate(objects) if i != target]
    if asked.get("kind") == "digit":
        return (
            "digit, other digits"
            if any(o.get("kind") == "digit" for o in others)
            else "digit, no other digit"
        )
    if any(o.get("shape") == asked.get("shape") for o in others):
        return "shape, same shape"
    if any(o.get("colour") == asked.get("colour") for o in others):
        return "shape, same colour only"
    return "shape, nothing shared"


def selectivity_hits(model_dir: Path, completions: Path, think: str = THINK) -> list[QueryPick]:
    """Per query of a grounding eval's completions, its `QueryPick`."""
    model = load_model(model_dir, device="cpu", dtype="fp32", attn_implementation="eager")
    processor = load_processor(model_dir)
    convention = coord_convention(model_family(model.config))
    out = []
    for line in completions.read_text().splitlines():
        row = json.loads(line)
        sample = sample_from_dict(row["sample"])
        on_image, owners = query_attention(model, processor, sample, convention, think)  # [L, H, D, N]
        target = asked_object(sample)
        sel = head_shares(on_image[-2:], owners, target)["selectivity"]  # [2, heads]
        last = on_image[-2:]  # [2, heads, D, N]
        on_target = last[..., torch.from_numpy(owners == target)].sum(-1)  # [2, heads, D]
        on_objects = last[..., torch.from_numpy(owners >= 0)].sum(-1)  # [2, heads, D]
        by_digit = (on_target / on_objects.clamp_min(1e-12)).mean((0, 1))  # [D]
        box = answered_box(row)
        out.append(
            QueryPick(
                float(sel.mean()),
                tuple(by_digit.tolist()),
                iou(box, sample.target.box.xyxy) if box else 0.0,
                f"{sample.meta.get('kind', sample.task)}: {confusers(sample.meta['objects'], target)}",
                sample.id,
            )
        )
    return out


def hits_by_selectivity(rows: list[tuple[float, float]]) -> list[dict]:
    """Per selectivity bin (BINS) with queries, of (selectivity, IoU) rows: n, acc@0.5 and mean IoU."""
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


def hits_summary(rows: list[QueryPick]) -> dict:
    """Over all queries: n, the mean selectivity and first-digit selectivity, acc@0.5, the mean selectivity at
    each of the first six digits; the bins of `hits_by_selectivity` by the mean and the first digit's; per
    `confusers` group: n, first-digit selectivity, acc@0.5."""
    hit = np.array([r.iou for r in rows]) >= 0.5
    groups = {}
    for label in sorted({r.confusers for r in rows}):
        g = [r for r in rows if r.confusers == label]
        groups[label] = {
            "n": len(g),
            "first_selectivity": round(float(np.mean([r.first for r in g])), 3),
            "acc@0.5": round(float(np.mean([r.iou >= 0.5 for r in g])), 3),
        }
    return {
        "n": len(rows),
        "mean_selectivity": round(float(np.mean([r.selectivity for r in rows])), 3),
        "mean_first_selectivity": round(float(np.mean([r.first for r in rows])), 3),
        "selectivity_by_digit": [  # over the queries whose box has that many digits (every box has 4)
            round(float(np.mean([r.by_digit[d] for r in rows if len(r.by_digit) > d])), 3) for d in range(6)
        ],
        "acc@0.5": float(hit.mean()),
        "bins": hits_by_selectivity([(r.selectivity, r.iou) for r in rows]),
        "bins_first": hits_by_selectivity([(r.first, r.iou) for r in rows]),
        "by_confusers": groups,
        "first_by_query": {r.query: round(r.first, 4) for r in rows},
    }


def compare_picks(a: dict, b: dict, queries: set[str] | None = None) -> dict:
    """Two `hits_summary`s of the same queries compared query by query at the first digit (of `queries` only,
    when given): the mean pick of each, the mean difference (b - a), how many queries each picks more sharply,
    and the sign test's p."""
    first_a, first_b = a["first_by_query"], b["first_by_query"]
    if first_a.keys() != first_b.keys():
        raise ValueError("the two probes do not hold the same queries")
    if queries is not None:
        first_a = {q: v for q, v in first_a.items() if q in queries}
        first_b = {q: first_b[q] for q in first_a}
    diff = np.array([first_b[q] - first_a[q] for q in first_a])  # (queries,)
    sharper_a, sharper_b = int((diff < 0).sum()), int((diff > 0).sum())
    return {
        "n": len(diff),
        "a": round(float(np.mean(list(first_a.values()))), 3),
        "b": round(float(np.mean(list(first_b.values()))), 3),
        "mean_difference": round(float(diff.mean()), 3),
        "sharper_a": sharper_a,
        "sharper_b": sharper_b,
        "p": sign_test(sharper_a, sharper_b),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", type=Path, default=[], help="model folders")
    ap.add_argument("--out", type=Path, help="folder for the held-out sets and probe.json")
    ap.add_argument(
        "--kinds", nargs="*", default=["single", "pair", "name"], help="grounding kinds (none: --data only)"
    )
    ap.add_argument("--data", nargs="*", type=Path, default=[], help="also these files (meta.objects, boxes)")
    ap.add_argument("--seed", type=int, default=23, help="world seed of the held-out queries")
    ap.add_argument("--n", type=int, default=50, help="queries per kind")
    ap.add_argument(
        "--think",
        default=THINK,
        help="the think text the models were trained to write (sft.think; default: THINK)",
    )
    ap.add_argument(
        "--hits", nargs="*", type=Path, default=[], help="grounding completions.jsonl (module doc)"
    )
    ap.add_argument(
        "--compare",
        nargs=2,
        type=Path,
        metavar=("A", "B"),
        help="two --hits probes' hits.json of the same queries: their first-digit picks, query by query",
    )
    args = ap.parse_args()
    if args.compare:
        a, b = (json.loads(path.read_text()) for path in args.compare)
        if len(a) != len(b):
            ap.error(f"--compare: {args.compare[0]} holds {len(a)} probes, {args.compare[1]} {len(b)}")
        kinds = {s.id: s.meta.get("kind", "") for path in args.data for s in read_samples(path)}
        for (name_a, sa), (name_b, sb) in zip(a.items(), b.items()):
            for kind in [None, *sorted({kinds[q] for q in sa["first_by_query"] if q in kinds})]:
                queries = None if kind is None else {q for q, k in kinds.items() if k == kind}
                c = compare_picks(sa, sb, queries)
                print(
                    f"{name_a} against {name_b}{'' if kind is None else f' ({kind})'}: first-digit pick "
                    f"{c['a']} / {c['b']} over {c['n']} queries (mean difference {c['mean_difference']:+}); "
                    f"sharper in the first {c['sharper_a']}, in the second {c['sharper_b']}; sign test p = "
                    f"{c['p']:.2g}"
                )
        return
    if not args.models or args.out is None:
        ap.error("--models and --out are needed (unless --compare)")
    result = {}
    if args.hits:
        if len(args.models) != 1:
            ap.error(
                "--hits reads the attention of the one model that wrote the completions: give one --models"
            )
        for path in args.hits:
            result[str(path)] = summary = hits_summary(selectivity_hits(args.models[0], path, args.think))
            print(
                path,
                f"n {summary['n']}, mean selectivity {summary['mean_selectivity']} (first digit "
                f"{summary['mean_first_selectivity']}), acc@0.5 {summary['acc@0.5']:.2f}",
                f"selectivity at the first six digits: {summary['selectivity_by_digit']}",
                *summary["bins"],
                "by the first digit's selectivity:",
                *summary["bins_first"],
                *(f"{k}: {v}" for k, v in summary["by_confusers"].items()),
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
            shares = probe(m, samples, args.think)
            result[f"{m} {kind}"] = shares
            print(f"{kind:8s} {m}: {summary(shares)}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "probe.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
