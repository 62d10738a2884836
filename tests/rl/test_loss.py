"""The GRPO policy loss: hand-computed values, gradients, guards, a finiteness property, TRL parity."""

import math
from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.testing import assert_close

from visual_rft import rl
from visual_rft.rl.loss import k3_kl, loss_stats

LN2 = math.log(2.0)
F64 = torch.float64


def make_inputs(ratio, d, logp=None):
    """logp, old_logp, ref_logp [N, T] with exp(logp - old_logp) = ratio and ref_logp - logp = d."""
    ratio = torch.tensor(ratio, dtype=F64)  # [N, T]
    d = torch.tensor(d, dtype=F64)  # [N, T]
    if logp is None:
        logp = -torch.arange(1, ratio.numel() + 1, dtype=F64).view(ratio.shape) / 4  # [N, T]
    logp = logp.clone().requires_grad_(True)  # [N, T]
    old_logp = logp.detach() - ratio.log()  # [N, T]
    ref_logp = logp.detach() + d  # [N, T]
    return logp, old_logp, ref_logp


# ---------------------------------------------------------------------------------------------
# Hand case 1: N = 2, T = 3, eps_low = eps_high = 0.2 (clip range [0.8, 1.2]), beta = 0.1.
#
#   A = [+2, -1];  mask = [[1, 1, 1], [1, 1, 0]]  (the last token of row 1 is padding)
#
#   row 0, A = +2        ratio   ratio*A   clamp*A         min    pg
#     t0                 1.5     3.0       1.2*2 = 2.4     2.4   -2.4   clipped HIGH (A > 0)
#     t1                 1.1     2.2       1.1*2 = 2.2     2.2   -2.2
#     t2                 0.5     1.0       0.8*2 = 1.6     1.0   -1.0   low ratio, A > 0: not clipped
#   row 1, A = -1
#     t0                 0.5    -0.5       0.8*-1 = -0.8  -0.8   +0.8   clipped LOW (A < 0)
#     t1                 1.5    -1.5       1.2*-1 = -1.2  -1.5   +1.5   high ratio, A < 0: not clipped
#     t2 (masked)        3.0     ...                              (ignored)
#
#   k3 KL with d = ref_logp - logp:  kl(d) = e^d - d - 1
#     d = 0    -> 0
#     d = ln2  -> 2 - ln2 - 1   = 1 - ln2
#     d = -ln2 -> 1/2 + ln2 - 1 = ln2 - 1/2
#   d = [[0, ln2, -ln2], [ln2, 0, 7 (masked)]]
#
#   token losses (pg + 0.1 * kl):
#     row 0: -2.4,  -2.2 + 0.1 (1 - ln2),  -1.0 + 0.1 (ln2 - 1/2)   sum = -5.6 + 0.05 = -5.55
#     row 1: 0.8 + 0.1 (1 - ln2),  1.5                              sum = 2.4 - 0.1 ln2
#     total = -3.15 - 0.1 ln2 over 5 masked tokens
#
#   "token":    (-3.15 - 0.1 ln2) / 5                           = -0.63 - 0.02 ln2
#   "sequence": (-5.55 / 3 + (2.4 - 0.1 ln2) / 2) / 2
#             = (-1.85 + 1.2 - 0.05 ln2) / 2                    = -0.325 - 0.025 ln2
#   "constant", max_len = 4: (-3.15 - 0.1 ln2) / (2 * 4)       = -0.39375 - 0.0125 ln2
# ---------------------------------------------------------------------------------------------
CASE1_RATIO = [[1.5, 1.1, 0.5], [0.5, 1.5, 3.0]]
CASE1_D = [[0.0, LN2, -LN2], [LN2, 0.0, 7.0]]
CASE1_A = torch.tensor([2.0, -1.0], dtype=F64)
CASE1_MASK = torch.tensor([[1, 1, 1], [1, 1, 0]], dtype=torch.bool)
CASE1_EXPECTED = {
    "token": -0.63 - 0.02 * LN2,
    "sequence": -0.325 - 0.025 * LN2,
    "constant": -0.39375 - 0.0125 * LN2,
}


@pytest.mark.parametrize("aggregation", ["token", "sequence", "constant"])
def test_hand_case_clipping_kl_and_aggregations(aggregation):
    logp, old, ref = make_inputs(CASE1_RATIO, CASE1_D)
    loss = rl.policy_loss(logp, old, ref, CASE1_A, CASE1_MASK, beta=0.1, aggregation=aggregation, max_len=4)
    assert_close(loss, torch.tensor(CASE1_EXPECTED[aggregation], dtype=F64))


def test_hand_case_per_token_pieces():
    logp, old, ref = make_inputs(CASE1_RATIO, CASE1_D)
    kl = k3_kl(logp, ref)[:, :2]  # [2, 2] unmasked columns
    assert_close(kl, torch.tensor([[0.0, 1 - LN2], [1 - LN2, 0.0]], dtype=F64))
    assert_close(k3_kl(logp, ref)[0, 2], torch.tensor(LN2 - 0.5, dtype=F64))
    # beta = 0: only pg. token: (-5.6 + 2.3) / 5 = -0.66
    loss = rl.policy_loss(logp, old, None, CASE1_A, CASE1_MASK, beta=0.0)
    assert_close(loss, torch.tensor(-0.66, dtype=F64))


def test_hand_case_stats():
    logp, old, ref = make_inputs(CASE1_RATIO, CASE1_D)
    s = loss_stats(logp, old, ref, CASE1_A, CASE1_MASK)
    # clipped: row 0 t0 (high), row 1 t0 (low); 5 masked tokens
    assert s["clip_frac"] == pytest.approx(2 / 5)
    assert s["clip_frac_low"] == pytest.approx(1 / 5)
    assert s["clip_frac_high"] == pytest.approx(1 / 5)
    # KL: (0 + (1 - ln2) + (ln2 - 1/2) + (1 - ln2) + 0) / 5
    assert s["kl"] == pytest.approx((1.5 - LN2) / 5)
    assert s["ratio_mean"] == pytest.approx((1.5 + 1.1 + 0.5 + 0.5 + 1.5) / 5)
    assert s["num_tokens"] == 5
    assert "kl" not in loss_stats(logp, old, None, CASE1_A, CASE1_MASK)


def test_masked_positions_do_not_matter():
    logp, old, ref = make_inputs(CASE1_RATIO, CASE1_D)
    base = rl.policy_loss(logp, old, ref, CASE1_A, CASE1_MASK, beta=0.1)
    old2, ref2 = old.clone(), ref.clone()
    old2[1, 2] = -40.0
    ref2[1, 2] = 3.0
    assert_close(rl.policy_loss(logp, old2, ref2, CASE1_A, CASE1_MASK, beta=0.1), base)
    # and a float mask gives the bool mask's result
    assert_close(rl.policy_loss(logp, old, ref, CASE1_A, CASE1_MASK.to(F64), beta=0.1), base)


# ---------------------------------------------------------------------------------------------
# Hand case 2: asymmetric clipping (DAPO's clip-higher), eps_low = 0.2, eps_high = 0.28,
# so the clip range is [0.8, 1.28]. beta = 0, full mask, A = [+1, -1].
#
#   row 0, A = +1   ratio   clamp    min(r*A, clamp*A)   pg
#                   1.25    1.25     1.25               -1.25   inside [0.8, 1.28]: NOT clipped
#                   1.30    1.28     1.28               -1.28   clipped high
#                   0.70    0.80     0.70               -0.70
#   row 1, A = -1   0.75    0.80     -0.80              +0.80   clipped low
#                   0.85    0.85     -0.85              +0.85
#                   1.30    1.28     -1.30              +1.30   high ratio, A < 0: not clipped
#   sum = -3.23 + 2.95 = -0.28 over 6 tokens -> "token" = -0.28 / 6
#
#   With symmetric eps = 0.2 (range [0.8, 1.2]) the first token is clipped too: 1.25 -> 1.2, and
#   1.3 clips to 1.2 instead of 1.28: row 0 = -1.2 - 1.2 - 0.7 = -3.1 -> total -0.15 -> -0.15 / 6.
# ---------------------------------------------------------------------------------------------
CASE2_RATIO = [[1.25, 1.3, 0.7], [0.75, 0.85, 1.3]]
CASE2_A = torch.tensor([1.0, -1.0], dtype=F64)
CASE2_MASK = torch.ones(2, 3)


def test_hand_case_asymmetric_eps():
    logp, old, _ = make_inputs(CASE2_RATIO, [[0.0] * 3] * 2)
    loss = rl.policy_loss(logp, old, None, CASE2_A, CASE2_MASK, eps_low=0.2, eps_high=0.28, beta=0.0)
    assert_close(loss, torch.tensor(-0.28 / 6, dtype=F64))
    sym = rl.policy_loss(logp, old, None, CASE2_A, CASE2_MASK, eps_low=0.2, eps_high=0.2, beta=0.0)
    assert_close(sym, torch.tensor(-0.15 / 6, dtype=F64))
    s = loss_stats(logp, old, None, CASE2_A, CASE2_MASK, eps_low=0.2, eps_high=0.28)
    assert (s["clip_frac_low"], s["clip_frac_high"]) == (pytest.approx(1 / 6), pytest.approx(1 / 6))
    # eps_low matters on its own: with eps_low = 0.3 (range [0.7, 1.28]) row 1 t0 (0.75) is no longer
    # clipped: +0.80 -> +0.75, total -0.33
    low = rl.policy_loss(logp, old, None, CASE2_A, CASE2_MASK, eps_low=0.3, eps_high=0.28, beta=0.0)
    assert_close(low, torch.tensor(-0.33 / 6, dtype=F64))


# ---------------------------------------------------------------------------------------------
# Gradients. At logp == old_logp the ratio is 1, both branches equal ratio * A, so
#   d pg_it / d logp_it = -A_i * ratio = -A_i,
# and d loss / d logp_it = -A_i * mask_it / Z with Z the aggregation's normaliser:
#   token: Z = total masked tokens; sequence: Z = N * len_i; constant: Z = N * max_len.
# ---------------------------------------------------------------------------------------------
GRAD_A = torch.tensor([1.5, -0.5, 2.0], dtype=F64)
GRAD_MASK = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]], dtype=F64)  # lengths 3, 1, 0


@pytest.mark.parametrize(
    "aggregation, normaliser",
    [
        ("token", torch.full((3, 1), 4.0, dtype=F64)),  # 4 masked tokens
        ("sequence", torch.tensor([[9.0], [3.0], [1.0]], dtype=F64)),  # N * len_i = 3*3, 3*1, (empty row)
        ("constant", torch.full((3, 1), 3.0 * 5, dtype=F64)),  # N * max_len = 3 * 5
    ],
)
def test_gradient_at_old_policy(aggregation, normaliser):
    logp = torch.randn(3, 4, dtype=F64, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
    # beta > 0 with ref == logp: the k3 KL has zero gradient there (d/dlogp = 1 - e^0 = 0)
    loss = rl.policy_loss(
        logp, logp.detach(), logp.detach(), GRAD_A, GRAD_MASK, beta=0.5, aggregation=aggregation, max_len=5
    )
    (grad,) = torch.autograd.grad(loss, logp)
    expected = -GRAD_A.unsqueeze(1) * GRAD_MASK / normaliser  # [3, 4]
    assert_close(grad, expected)


def test_kl_gradient_hand_values():
    # A = 0 kills pg. d kl / d logp = d/dlogp [e^(ref - logp) - (ref - logp) - 1] = 1 - e^d.
    #   d = ln2 -> 1 - 2 = -1;  d = -ln2 -> 1 - 1/2 = 1/2;  d = 0 -> 0.
    # beta = 0.5, "token" over 4 masked tokens: grad = 0.5 * (1 - e^d) / 4.
    logp, old, ref = make_inputs([[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]], [[LN2, -LN2, 0.0], [LN2, 9.0, 9.0]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    loss = rl.policy_loss(logp, old, ref, torch.zeros(2, dtype=F64), mask, beta=0.5)
    (grad,) = torch.autograd.grad(loss, logp)
    expected = torch.tensor([[-1.0, 0.5, 0.0], [-1.0, 0.0, 0.0]], dtype=F64) * 0.5 / 4
    assert_close(grad, expected)


# ---------------------------------------------------------------------------------------------
# Guards
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("aggregation", ["token", "sequence", "constant"])
def test_all_empty_mask_gives_connected_zero(aggregation):
    logp = torch.randn(2, 3, requires_grad=True)
    mask = torch.zeros(2, 3, dtype=torch.bool)
    loss = rl.policy_loss(
        logp, logp.detach() - 1, logp.detach() + 1, torch.ones(2), mask, aggregation=aggregation, max_len=3
    )
    assert loss.item() == 0.0
    assert loss.grad_fn is not None
    loss.backward()
    assert torch.equal(logp.grad, torch.zeros(2, 3))


def test_empty_row_contributes_nothing_in_sequence_mean():
    # row 0 has pg = -A * 1 = -2 per token (ratio 1), row 1 is empty: (-2 + 0) / N=2 = -1
    logp = torch.zeros(2, 3, requires_grad=True)
    mask = torch.tensor([[1, 1, 0], [0, 0, 0]])
    loss = rl.policy_loss(
        logp, logp.detach(), None, torch.tensor([2.0, 5.0]), mask, beta=0.0, aggregation="sequence"
    )
    assert_close(loss, torch.tensor(-1.0))


def test_kl_is_clamped_against_overflow():
    logp = torch.zeros(1, 2, requires_grad=True)
    ref = torch.tensor([[100.0, -100.0]])  # d = +-100 -> clamped to +-20
    kl = k3_kl(logp, ref)
    assert_close(kl, torch.tensor([[math.exp(20) - 21, math.exp(-20) + 19]]))
    loss = rl.policy_loss(logp, logp.detach(), ref, torch.zeros(1), torch.ones(1, 2), beta=1.0)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logp.grad).all()


def test_beta_zero_ignores_reference():
    logp, old, ref = make_inputs(CASE1_RATIO, CASE1_D)
    a = rl.policy_loss(logp, old, ref, CASE1_A, CASE1_MASK, beta=0.0)
    b = rl.policy_loss(logp, old, None, CASE1_A, CASE1_MASK, beta=0.0)
    assert_close(a, b)


def test_validation_errors():
    logp = torch.zeros(2, 3)
    mask = torch.ones(2, 3)
    with pytest.raises(ValueError, match="ref_logp"):
        rl.policy_loss(logp, logp, None, torch.zeros(2), mask, beta=0.04)
    with pytest.raises(ValueError, match="max_len"):
        rl.policy_loss(logp, logp, logp, torch.zeros(2), mask, aggregation="constant")
    with pytest.raises(ValueError, match="aggregation"):
        rl.policy_loss(logp, logp, logp, torch.zeros(2), mask, aggregation="mean")
    with pytest.raises(ValueError, match="advantages"):
        rl.policy_loss(logp, logp, logp, torch.zeros(2, 3), mask)
    with pytest.raises(ValueError, match="mask"):
        rl.policy_loss(logp, logp, logp, torch.zeros(2), torch.ones(2, 4))
    with pytest.raises(ValueError, match="eps"):
        rl.policy_loss(logp, logp, logp, torch.zeros(2), mask, eps_low=-0.1)


# ---------------------------------------------------------------------------------------------
# Property: finite loss and gradient for any finite log-probs in [-50, 0], any mask, beta in [0, 1]
# ---------------------------------------------------------------------------------------------


@st.composite
def loss_inputs(draw):
    n, t = draw(st.integers(1, 4)), draw(st.integers(1, 6))
    logps = st.lists(st.floats(-50, 0, width=32), min_size=n * t, max_size=n * t)
    return dict(
        logp=torch.tensor(draw(logps)).view(n, t),
        old=torch.tensor(draw(logps)).view(n, t),
        ref=torch.tensor(draw(logps)).view(n, t),
        adv=torch.tensor(draw(st.lists(st.floats(-10, 10, width=32), min_size=n, max_size=n))),
        mask=torch.tensor(draw(st.lists(st.booleans(), min_size=n * t, max_size=n * t))).view(n, t),
        beta=draw(st.floats(0, 1)),
        eps_low=draw(st.floats(0, 0.9)),
        eps_high=draw(st.floats(0, 5)),
        aggregation=draw(st.sampled_from(["token", "sequence", "constant"])),
    )


@settings(max_examples=150, deadline=None)
@given(loss_inputs())
def test_property_loss_is_finite(x):
    logp = x["logp"].requires_grad_(True)
    loss = rl.policy_loss(
        logp,
        x["old"],
        x["ref"],
        x["adv"],
        x["mask"],
        eps_low=x["eps_low"],
        eps_high=x["eps_high"],
        beta=x["beta"],
        aggregation=x["aggregation"],
        max_len=logp.shape[1],
    )
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(logp.grad).all()
    assert all(math.isfinite(v) for v in loss_stats(logp, x["old"], x["ref"], x["adv"], x["mask"]).values())


# ---------------------------------------------------------------------------------------------
# Cross-check with TRL 1.16: GRPOTrainer._compute_loss (trl/trainer/grpo_trainer.py:3020-3292) is
# called as an unbound method on a stub `self` that carries only the attributes it reads; the
# model forward (_get_per_token_logps_and_entropies) is stubbed to return our logp tensor.
# ---------------------------------------------------------------------------------------------


def trl_compute_loss(loss_type, logp, old, ref, adv, mask, *, beta, eps_low, eps_high, max_len):
    grpo_trainer = pytest.importorskip("trl.trainer.grpo_trainer")
    n, t = logp.shape
    stub = SimpleNamespace(
        _get_per_token_logps_and_entropies=lambda *args, **kwargs: (logp, torch.zeros_like(logp), None),
        top_entropy_quantile=1.0,
        off_policy_mask_threshold=None,
        importance_sampling_level="token",
        beta=beta,
        loss_type=loss_type,
        epsilon_low=eps_low,
        epsilon_high=eps_high,
        args=SimpleNamespace(use_bias_correction_kl=False, delta=None, steps_per_generation=1),
        use_vllm=False,
        model=SimpleNamespace(training=True),
        current_gradient_accumulation_steps=1,
        accelerator=SimpleNamespace(num_processes=1, reduce=lambda x, reduction: x, gather=lambda x: x),
        max_completion_length=max_len,
        _entropy_bonus_enabled=False,
        aux_loss_enabled=False,
        _metrics={"train": defaultdict(list), "eval": defaultdict(list)},
    )
    inputs = {
        "prompt_ids": torch.zeros(n, 2, dtype=torch.long),
        "prompt_mask": torch.ones(n, 2, dtype=torch.long),
        "completion_ids": torch.zeros(n, t, dtype=torch.long),
        "completion_mask": mask.long(),
        "advantages": adv,
        "old_per_token_logps": old,
        "ref_per_token_logps": ref,
        "num_items_in_batch": mask.sum().float(),  # one micro-batch = the whole generation batch
    }
    loss = grpo_trainer.GRPOTrainer._compute_loss(stub, None, inputs)
    return loss, stub._metrics["train"]


@pytest.mark.parametrize(
    "loss_type, aggregation",
    [("dapo", "token"), ("bnpo", "token"), ("grpo", "sequence"), ("dr_grpo", "constant")],
)
@pytest.mark.parametrize("beta, eps_low, eps_high", [(0.04, 0.2, 0.2), (0.0, 0.2, 0.28), (0.5, 0.1, 0.3)])
def test_matches_trl_compute_loss(loss_type, aggregation, beta, eps_low, eps_high):
    g = torch.Generator().manual_seed(0)
    n, t, max_len = 6, 7, 9
    base = -torch.rand(n, t, generator=g) * 3  # [N, T]
    old = base + torch.randn(n, t, generator=g) * 0.3  # ratios spread across the clip range
    ref = base + torch.randn(n, t, generator=g) * 0.5
    adv = torch.randn(n, generator=g)
    lengths = torch.tensor([7, 3, 1, 5, 0, 6])  # one empty completion
    mask = torch.arange(t).unsqueeze(0) < lengths.unsqueeze(1)  # [N, T]

    logp_trl = base.clone().requires_grad_(True)
    trl_loss, metrics = trl_compute_loss(
        loss_type,
        logp_trl,
        old,
        ref,
        adv,
        mask,
        beta=beta,
        eps_low=eps_low,
        eps_high=eps_high,
        max_len=max_len,
    )
    trl_loss.backward()

    logp = base.clone().requires_grad_(True)
    loss = rl.policy_loss(
        logp,
        old,
        ref,
        adv,
        mask,
        eps_low=eps_low,
        eps_high=eps_high,
        beta=beta,
        aggregation=aggregation,
        max_len=max_len,
    )
    loss.backward()
    assert_close(loss, trl_loss)
    assert_close(logp.grad, logp_trl.grad)

    stats = loss_stats(logp, old, ref, adv, mask, eps_low=eps_low, eps_high=eps_high)
    assert stats["clip_frac_low"] == pytest.approx(metrics["clip_ratio/low_mean"][0])
    assert stats["clip_frac_high"] == pytest.approx(metrics["clip_ratio/high_mean"][0])
    assert stats["clip_frac"] == pytest.approx(metrics["clip_ratio/region_mean"][0])
    assert 0 < stats["clip_frac"] < 1  # the case exercises clipping
    if beta:
        assert stats["kl"] == pytest.approx(metrics["kl"][0])
