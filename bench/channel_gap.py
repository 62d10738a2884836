"""Where the held heads' pick comes from, by RoPE channel: the query-key logit gap between the asked object's
image tokens and the other objects', at the position that predicts the box's first digit, split into the
`--slowest` frequencies' channels and the rest.

    python bench/channel_gap.py --models runs/rope_A/base runs/rope_B/base --data runs/held23_400/grounding_test.jsonl

A head picks the asked object when its logits on that object's tokens stand above those on the other objects'.
Each logit is a sum over the head's channels (q_d k_d, after the rotary embedding, times the head's scaling), so
the gap splits exactly into what each group of channels adds. With `bench/content_channels.py`'s stilled
frequencies those are the channels in which a content match is the same wherever the key sits (RESULTS.md section
33); in a model with the default RoPE the same channels turn with the key's cell and the query's distance. Read
with the reference answer fed in (as `attention_probe.py` does), over the queries of --data that have another
object than the asked one (up to --n), for the last --layers layers (the binding loss's, by default the last two).
Prints, per model, the mean gap and the part of it from the slowest channels, overall and per head.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from transformers import AttentionInterface, AttentionMaskInterface
from transformers.masking_utils import eager_mask
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLAttention, eager_attention_forward

from visual_rft.data.jsonl import read_samples
from visual_rft.models.loading import coord_convention, load_model, load_processor, model_family

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ scripts, run as scripts or loaded
from attention_probe import asked_object, reading_cells, teacher_forced  # noqa: E402

RECORDED: list[tuple[torch.Tensor, torch.Tensor, float]] = []
"""(query, key, scaling) of each text attention call of the last forward, in layer order."""


def recording_attention(module, query, key, value, attention_mask, **kwargs):
    """Eager attention that first records the text layers' rotated queries and keys."""
    if isinstance(module, Qwen2_5_VLAttention):
        RECORDED.append((query.detach(), key.detach(), module.scaling))
    return eager_attention_forward(module, query, key, value, attention_mask, **kwargs)


AttentionInterface.register("record_qk", recording_attention)
AttentionMaskInterface.register("record_qk", eager_mask)  # else no causal mask is built for it


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="world grounding queries (meta.objects)")
    parser.add_argument("--n", type=int, default=200, help="at most this many queries")
    parser.add_argument("--slowest", type=int, default=4, help="how many of the slowest frequencies to split")
    parser.add_argument("--layers", type=int, default=2, help="the last this many layers")
    parser.add_argument("--out", type=Path, help="also write the result as JSON here")
    args = parser.parse_args()
    samples = [s for s in read_samples(args.data) if len(s.meta.get("objects", [])) > 1][: args.n]
    if not samples:
        raise SystemExit(f"{args.data}: no grounding query with more than one object")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)  # before the models run, not after
    result = {}
    for model_dir in args.models:
        result[str(model_dir)] = r = channel_gaps(model_dir, samples, args.slowest, args.layers)
        print(
            f"{model_dir}: {r['n']} queries; logit gap asked - other objects {r['gap']:.3f}, of which the "
            f"{args.slowest} slowest frequencies' channels {r['gap_slowest']:.3f} ({r['share']:.0%})"
        )
        for name, head in r["heads"].items():
            print(f"  {name}: gap {head['gap']:.3f}, slowest channels {head['gap_slowest']:.3f}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")


def channel_gaps(model_dir: Path, samples: list, slowest: int, layers: int) -> dict:
    """Mean over queries of the logit gap (asked object's tokens - other objects') per held head at the first
    digit's predicting position, in all channels and in the `slowest` frequencies' channels."""
    model = load_model(model_dir, device="cpu", dtype="fp32", attn_implementation="record_qk")
    processor = load_processor(model_dir)
    convention = coord_convention(model_family(model.config))
    per_query = [query_gaps(model, processor, s, convention, slowest, layers) for s in samples]
    gaps = np.stack([g for g, _ in per_query])  # (queries, layers, heads)
    slow = np.stack([s for _, s in per_query])  # (queries, layers, heads)
    first_layer = model.config.text_config.num_hidden_layers - layers
    heads = {
        f"L{first_layer + li}H{h}": {
            "gap": float(gaps[:, li, h].mean()),
            "gap_slowest": float(slow[:, li, h].mean()),
        }
        for li in range(gaps.shape[1])
        for h in range(gaps.shape[2])
    }
    return {
        "n": len(samples),
        "gap": float(gaps.mean()),
        "gap_slowest": float(slow.mean()),
        "share": float(slow.mean() / gaps.mean()) if gaps.mean() else float("nan"),
        "heads": heads,
    }


def query_gaps(
    model, processor, sample, convention: str, slowest: int, layers: int
) -> tuple[np.ndarray, ...]:
    """((layers, heads) logit gap in all channels, the same in the slowest frequencies' channels) for one
    query, at the position that predicts the first digit of its box."""
    inputs, frame = teacher_forced(model, processor, sample, convention)
    RECORDED.clear()
    with torch.no_grad():
        model(**inputs)
    position, image, asked, others = pick_cells(model, processor, inputs, frame, sample)
    gaps, slow = [], []
    for query, key, scaling in RECORDED[-layers:]:
        heads, head_dim = query.shape[1], query.shape[-1]
        key = key.repeat_interleave(heads // key.shape[1], dim=1)  # (1, heads, S, head_dim): grouped KV
        q = query[0, :, position]  # (heads, head_dim)
        k = key[0][:, image]  # (heads, n_image, head_dim)
        terms = q[:, None, :] * k * scaling  # (heads, n_image, head_dim): each channel's part of each logit
        half = head_dim // 2
        still = torch.zeros(head_dim, dtype=torch.bool)  # channels i and i + half share frequency i
        still[half - slowest : half] = still[head_dim - slowest :] = True
        gaps.append(gap(terms.sum(-1), asked, others).numpy())  # (heads,)
        slow.append(gap(terms[..., still].sum(-1), asked, others).numpy())  # (heads,)
    return np.stack(gaps), np.stack(slow)


def pick_cells(
    model, processor, inputs, frame, sample
) -> tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(the position that predicts the box's first digit, (n_image,) the image tokens' positions, (n_image,)
    masks of the asked object's cells and of the other objects' cells) for a teacher-forced query."""
    image, read, owners = reading_cells(model, processor, inputs, frame, sample)
    target = asked_object(sample)
    asked = torch.from_numpy(owners == target)  # (n_image,)
    others = torch.from_numpy((owners >= 0) & (owners != target))  # (n_image,)
    return read[0], image, asked, others


def gap(logits: torch.Tensor, asked: torch.Tensor, others: torch.Tensor) -> torch.Tensor:
    """(heads,) mean logit on the asked object's cells - mean on the other objects' cells, of (heads, n_image)."""
    return logits[:, asked].mean(-1) - logits[:, others].mean(-1)


if __name__ == "__main__":
    main()
