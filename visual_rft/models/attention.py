"""The attention weights of chosen decoder layers, read during training at SDPA's cost elsewhere.

A loss on where the language model's heads look (`recipes/binding.py`) needs their attention weights, which only
eager attention returns. `HELD_EAGER` is an attention implementation registered with transformers: SDPA in every
attention module except those marked `returns_weights`, which run eager and return their weights;
`AttentionRecorder` marks the chosen layers' modules and keeps each one's weights of the last forward.

    model = load_model(folder, attn_implementation=HELD_EAGER)
    recorder = AttentionRecorder(model, [-2, -1])
    model(**inputs); recorder.rows(r, heads, queries, keys)  # [l, h, Q, K]
"""

from __future__ import annotations

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, eager_mask
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import eager_attention_forward

from visual_rft.models.forward import core_model

HELD_EAGER = "vrft_held_eager"
"""The attention implementation of a binding stage (a `model.attn_implementation` value, registered with
transformers here): SDPA, except in attention modules marked `returns_weights` (the held layers, marked by
`AttentionRecorder`), which run eager and return their weights. Masks are eager's (additive), which both
take. It is not saved with a checkpoint: the model folder loads as any Qwen-VL."""


def held_eager_attention(module, query, key, value, attention_mask, **kwargs):
    """`HELD_EAGER`'s attention: eager where the module is marked, SDPA (no weights) elsewhere."""
    if getattr(module, "returns_weights", False):
        return eager_attention_forward(module, query, key, value, attention_mask, **kwargs)
    return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)


AttentionInterface.register(HELD_EAGER, held_eager_attention)
AttentionMaskInterface.register(HELD_EAGER, eager_mask)
WEIGHTED_ATTENTION = ("eager", HELD_EAGER)
"""The attention implementations under which the held layers return their weights."""


def check_layers(layers: list[int], n: int) -> None:
    """`binding.layers` must index layers of an `n`-layer language model (negative: from the last)."""
    bad = [i for i in layers if not -n <= i < n]
    if bad:
        raise ValueError(f"binding.layers: {bad} are not layers of a {n}-layer language model")


class AttentionRecorder:
    """Forward hooks that keep the attention weights ([B, heads, S, S]) of some decoder layers' last call;
    their attention modules are marked `returns_weights` (eager under `HELD_EAGER`)."""

    def __init__(self, model, layers: list[int]):
        decoder = core_model(model).model.language_model.layers
        check_layers(layers, len(decoder))
        self.layers = sorted({i % len(decoder) for i in layers})
        self.weights: dict[int, torch.Tensor] = {}
        for i in self.layers:
            decoder[i].self_attn.returns_weights = True
        self.handles = [decoder[i].self_attn.register_forward_hook(self._keeper(i)) for i in self.layers]

    def _keeper(self, i: int):
        def keep(module, args, output):
            if output[1] is None:
                raise RuntimeError(
                    "binding: the decoder returned no attention weights; load the model with "
                    f"model.attn_implementation={HELD_EAGER} or eager"
                )
            self.weights[i] = output[1]

        return keep

    def rows(self, r: int, heads: list[int], queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """[l, h, Q, K] of row r of the last forward: the held layers' attention of `heads` (all when empty)
        from positions `queries` to positions `keys`, sliced without copying the whole [B, heads, S, S]."""
        out = []
        for i in self.layers:
            w = self.weights[i][r]  # [heads, S, S]
            w = w[heads] if heads else w  # [h, S, S]
            out.append(w[:, queries][:, :, keys])  # [h, Q, K]
        return torch.stack(out)
