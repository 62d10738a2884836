"""Log-probabilities of chosen tokens: token_logprobs from logits; head_logprobs in chunks from hidden
states, equal to the full computation in values and gradients."""

import pytest
import torch
from torch.testing import assert_close

from visual_rft.models.logprobs import head_logprobs, token_logprobs


def test_token_logprobs_matches_log_softmax_gather():
    g = torch.Generator().manual_seed(0)
    logits = (torch.randn(3, 5, 11, generator=g) * 4).requires_grad_(True)
    tokens = torch.randint(0, 11, (3, 5), generator=g)
    ours = token_logprobs(logits, tokens)
    naive = logits.log_softmax(-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    assert_close(ours, naive)
    (g_ours,) = torch.autograd.grad(ours.sum(), logits)
    (g_naive,) = torch.autograd.grad(naive.sum(), logits)
    assert_close(g_ours, g_naive)


def test_token_logprobs_bf16_is_upcast():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 50, generator=g) * 10
    tokens = torch.randint(0, 50, (2, 4), generator=g)
    out = token_logprobs(logits.bfloat16(), tokens)
    assert out.dtype == torch.float32
    ref = logits.bfloat16().float().log_softmax(-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    assert_close(out, ref)


def test_token_logprobs_shapes():
    assert token_logprobs(torch.zeros(0, 3, 7), torch.zeros(0, 3, dtype=torch.long)).shape == (0, 3)
    with pytest.raises(ValueError, match=r"\[N, T, V\]"):
        token_logprobs(torch.zeros(2, 3, 7), torch.zeros(2, 4, dtype=torch.long))


def test_token_logprobs_matches_trl_selective_log_softmax():
    selective_log_softmax = pytest.importorskip("trl.trainer.utils").selective_log_softmax
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(3, 4, 13, generator=g) * 5
    tokens = torch.randint(0, 13, (3, 4), generator=g)
    assert_close(token_logprobs(logits, tokens), selective_log_softmax(logits, tokens))
    assert_close(
        token_logprobs(logits.bfloat16(), tokens),
        selective_log_softmax(logits.bfloat16(), tokens).float(),
        atol=0.1,  # TRL's bf16 path keeps bf16 log-softmax outputs
        rtol=0.02,
    )


@pytest.mark.parametrize("chunk_size", [1, 4, 5, 21, 1000])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
@pytest.mark.parametrize("bias", [False, True])  # False: the fused backward; True: checkpointed chunks
def test_head_logprobs_equal_the_full_computation_with_gradients(chunk_size, temperature, bias):
    g = torch.Generator().manual_seed(0)
    head = torch.nn.Linear(16, 50, bias=bias)
    with torch.no_grad():
        head.weight.copy_(torch.randn(50, 16, generator=g) / 4)  # logits of std ~1, as a model's
    hidden = torch.randn(3, 7, 16, generator=g).requires_grad_(True)
    tokens = torch.randint(0, 50, (3, 7), generator=g)
    chunked = head_logprobs(hidden, head, tokens, temperature=temperature, chunk_size=chunk_size)  # [3, 7]
    full = token_logprobs(head(hidden) / temperature, tokens)  # [3, 7] from the full [3, 7, 50] logits
    assert_close(chunked, full, atol=1e-6, rtol=1e-6)
    weights = torch.randn(3, 7, generator=g)  # a loss that weighs every token differently
    grads_chunked = torch.autograd.grad((chunked * weights).sum(), (hidden, head.weight))
    grads_full = torch.autograd.grad((full * weights).sum(), (hidden, head.weight))
    for a, b in zip(grads_chunked, grads_full):
        assert_close(a, b, atol=1e-6, rtol=1e-6)


def test_head_logprobs_under_bf16_autocast_match_the_full_computation():
    """bf16-mixed: fp32 weights, bf16 matmuls, fp32 log-softmax; the fused backward recomputes in bf16 too."""
    g = torch.Generator().manual_seed(1)
    head = torch.nn.Linear(32, 300, bias=False)
    with torch.no_grad():
        head.weight.copy_(torch.randn(300, 32, generator=g) / 6)
    hidden = torch.randn(2, 9, 32, generator=g).requires_grad_(True)
    tokens = torch.randint(0, 300, (2, 9), generator=g)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        chunked = head_logprobs(hidden, head, tokens, chunk_size=4)  # [2, 9]
        full = token_logprobs(head(hidden), tokens)  # [2, 9]
    assert chunked.dtype == torch.float32
    assert_close(chunked, full, atol=1e-5, rtol=1e-5)
    grads = [torch.autograd.grad(x.sum(), (hidden, head.weight)) for x in (chunked, full)]
    for a, b in zip(*grads):
        assert a.dtype == b.dtype == torch.float32
        assert_close(a, b, atol=2e-2, rtol=2e-2)  # bf16 products, summed in other orders


def test_head_logprobs_without_grad_and_empty():
    head = torch.nn.Linear(4, 9)
    with torch.no_grad():
        out = head_logprobs(torch.randn(2, 3, 4), head, torch.zeros(2, 3, dtype=torch.long), chunk_size=2)
    assert out.shape == (2, 3) and not out.requires_grad
    assert head_logprobs(torch.zeros(2, 0, 4), head, torch.zeros(2, 0, dtype=torch.long)).shape == (2, 0)
    with pytest.raises(ValueError, match=r"\[N, T, H\]"):
        head_logprobs(torch.zeros(2, 3, 4), head, torch.zeros(2, 4, dtype=torch.long))
