"""models/attention.py: eager attention in the held layers only, and their weights kept."""

import torch

from visual_rft.models.attention import HELD_EAGER, AttentionRecorder
from visual_rft.models.loading import load_model


def test_held_eager_attention_is_eager_in_the_held_layer_and_sdpa_elsewhere(
    tiny_model_dir, mixed_size_samples, policy_inputs
):
    """The same logits and held weights as eager everywhere; the layer not held returns no weights (SDPA)."""
    _, _, inputs, _, _ = policy_inputs(tiny_model_dir, mixed_size_samples)
    out = {}
    for attn in ("eager", HELD_EAGER):
        model = load_model(tiny_model_dir, device="cpu", attn_implementation=attn)
        recorder = AttentionRecorder(model, [-1])  # the 1m model: 2 layers
        first = []
        layer0 = model.model.language_model.layers[0].self_attn
        layer0.register_forward_hook(lambda m, a, o, first=first: first.append(o[1]))
        with torch.no_grad():
            logits = model(**inputs).logits  # [B, S, V]
        out[attn] = logits, recorder.weights[1], first[0]
    (logits, held, other), (logits_e, held_e, other_e) = out[HELD_EAGER], out["eager"]
    torch.testing.assert_close(logits, logits_e, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(held, held_e, rtol=1e-4, atol=1e-6)  # [B, heads, S, S]
    assert other is None and other_e is not None
