"""Log-probabilities of chosen tokens without the full [N, T, V] logits (selective log-softmax in chunks).

With Qwen's 151,936-token vocabulary, 16 rows and 1,024 completion tokens, the logits are 5 GB in bf16 and
10 GB as the fp32 copy the logsumexp wants. `head_logprobs` takes the hidden states instead and applies the
language-model head to `chunk_size` tokens at a time:

- forward: per chunk, logits [c, V] -> logit[token] - logsumexp, then the chunk's logits are freed; only
  the [N*T] logsumexps are kept for the backward pass;
- backward (`ChunkedHeadLogprobs`): per chunk, the logits are recomputed, the gradient of the log-probs
  with respect to them is (onehot(token) - softmax) * grad, and it is pushed through the head at once:
  into the hidden states' gradient and, with `addmm_`, into ONE [V, H] buffer for the head's weight.

So neither pass holds more than one chunk's [c, V] logits, and the head's weight gradient exists once
(autograd with a checkpoint per chunk would make a [V, H] gradient per chunk and sum them: 0.9 GB each
for Qwen2-VL-2B's tied embedding, as large as the logits of 1,536 tokens). A head that is not a plain
bias-free `nn.Linear` takes the generic path: `torch.utils.checkpoint` per chunk.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

DEFAULT_CHUNK_SIZE = 512
"""Completion tokens whose vocabulary logits exist at once (512 x 151,936 fp32 logits: 0.3 GB)."""


def head_logprobs(
    hidden: Tensor, head, tokens: Tensor, *, temperature: float = 1.0, chunk_size: int = DEFAULT_CHUNK_SIZE
) -> Tensor:
    """log softmax(head(hidden) / temperature)[token]: hidden [N, T, H], tokens [N, T] -> float [N, T].

    The same values (and gradients) as ``token_logprobs(head(hidden) / temperature, tokens)``, computed
    `chunk_size` tokens (of the flattened N * T) at a time; chunk_size <= 0: one chunk.
    """
    if hidden.dim() != 3 or tokens.shape != hidden.shape[:2]:
        raise ValueError(
            f"hidden must be [N, T, H] and tokens [N, T]; got {tuple(hidden.shape)} and {tuple(tokens.shape)}"
        )
    N, T, H = hidden.shape
    if N * T == 0:
        dtype = torch.float64 if hidden.dtype == torch.float64 else torch.float32
        return hidden.new_zeros((N, T), dtype=dtype)  # [0, T] or [N, 0]
    flat_hidden = hidden.reshape(N * T, H)  # [N*T, H]
    flat_tokens = tokens.reshape(N * T).long()  # [N*T]
    step = chunk_size if chunk_size > 0 else N * T
    if isinstance(head, torch.nn.Linear) and head.bias is None:
        out = ChunkedHeadLogprobs.apply(flat_hidden, head.weight, flat_tokens, float(temperature), step)
        return out.view(N, T)  # [N, T]
    parts = []
    for start in range(0, N * T, step):
        h = flat_hidden[start : start + step]  # [c, H]
        t = flat_tokens[start : start + step]  # [c]
        if torch.is_grad_enabled() and h.requires_grad:
            parts.append(checkpoint(_chunk_logprobs, h, t, head, temperature, use_reentrant=False))
        else:
            parts.append(_chunk_logprobs(h, t, head, temperature))  # [c]
    return torch.cat(parts).view(N, T)  # [N, T]


def _chunk_logprobs(hidden: Tensor, tokens: Tensor, head, temperature: float) -> Tensor:
    """[c] selected log-probabilities of one chunk: hidden [c, H], tokens [c]."""
    return _picked_logprobs(_float_logits(head(hidden), temperature), tokens)  # [c]


def _picked_logprobs(logits: Tensor, tokens: Tensor) -> Tensor:
    """logits [..., V] (float), tokens [...] -> [...] logit[token] - logsumexp(logits)."""
    picked = logits.gather(-1, tokens.long().unsqueeze(-1)).squeeze(-1)  # [...]
    return picked - torch.logsumexp(logits, dim=-1)  # [...]


def _float_logits(logits: Tensor, temperature: float) -> Tensor:
    """Half-precision logits upcast (logsumexp in bf16 is too coarse), then divided by the temperature."""
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()  # [c, V]
    return logits / temperature if temperature != 1 else logits  # [c, V]


class ChunkedHeadLogprobs(torch.autograd.Function):
    """hidden [M, H], weight [V, H], tokens [M] -> [M] log softmax(hidden @ weight.T / temperature)[token],
    chunk by chunk in both passes (module docstring). Autocast, if on, is re-entered for the backward's
    recomputation, so both passes compute the logits in the same precision."""

    @staticmethod
    def forward(ctx, hidden, weight, tokens, temperature, chunk_size):
        device = hidden.device.type
        ctx.autocast = (torch.is_autocast_enabled(device), torch.get_autocast_dtype(device))
        dtype = torch.float64 if hidden.dtype == torch.float64 else torch.float32
        out = torch.empty(hidden.shape[0], dtype=dtype, device=hidden.device)  # [M]
        lse = torch.empty_like(out)  # [M]
        for s in range(0, hidden.shape[0], chunk_size):
            logits = _float_logits(
                torch.nn.functional.linear(hidden[s : s + chunk_size], weight), temperature
            )
            lse[s : s + chunk_size] = torch.logsumexp(logits, dim=-1)  # [c]
            picked = logits.gather(-1, tokens[s : s + chunk_size, None]).squeeze(-1)  # [c]
            out[s : s + chunk_size] = picked - lse[s : s + chunk_size]
        ctx.save_for_backward(hidden, weight, tokens, lse)
        ctx.temperature, ctx.chunk_size = temperature, chunk_size
        return out

    @staticmethod
    def backward(ctx, grad_out):
        hidden, weight, tokens, lse = ctx.saved_tensors
        T, c = ctx.temperature, ctx.chunk_size
        enabled, dtype = ctx.autocast
        compute = dtype if enabled else hidden.dtype  # the dtype the forward's matmuls ran in
        w = weight.to(compute)  # [V, H] one cast for all chunks (none without autocast)
        grad_hidden = torch.empty_like(hidden) if ctx.needs_input_grad[0] else None  # [M, H]
        grad_weight = torch.zeros_like(weight) if ctx.needs_input_grad[1] else None  # [V, H]
        grad_out = grad_out.to(lse.dtype)  # [M]
        for s in range(0, hidden.shape[0], c):
            h = hidden[s : s + c].to(compute)  # [c, H]
            logits = _float_logits(h @ w.t(), T)  # [c, V] a fresh tensor: changed in place below
            g = grad_out[s : s + c, None]  # [c, 1]
            grad_logits = logits.sub_(lse[s : s + c, None]).exp_().mul_(-g)  # [c, V] -softmax * grad
            grad_logits.scatter_add_(-1, tokens[s : s + c, None], g)  # + onehot * grad
            if T != 1:
                grad_logits.div_(T)
            grad_logits = grad_logits.to(compute)  # [c, V]
            if grad_hidden is not None:
                grad_hidden[s : s + c] = (grad_logits @ w).to(hidden.dtype)  # [c, H]
            if grad_weight is not None:
                if compute == grad_weight.dtype:
                    grad_weight.addmm_(grad_logits.t(), h)  # [V, H] in place
                else:
                    grad_weight.add_(grad_logits.t() @ h)  # [V, H] a half-precision product, added
        return grad_hidden, grad_weight, None, None, None


def token_logprobs(logits: Tensor, tokens: Tensor, temperature: float = 1.0) -> Tensor:
    """log softmax(logits / temperature)[token] per position: logits [N, T, V], tokens [N, T] -> float
    log-probs [N, T].

    Computed row by row as ``logit[token] - logsumexp(logits)``, so the full log-softmax [N, T, V] is
    never materialised. Half-precision logits are upcast to float32 one row at a time (logsumexp in
    bf16 is too coarse); autograd keeps those rows, i.e. at most one float [N, T, V] copy in all.
    Float32/float64 logits are used in place (no copy).
    """
    if logits.dim() != 3 or tokens.shape != logits.shape[:2]:
        raise ValueError(
            f"logits must be [N, T, V] and tokens [N, T]; got {tuple(logits.shape)} and {tuple(tokens.shape)}"
        )
    rows = []
    for row_logits, row_tokens in zip(logits, tokens, strict=True):  # [T, V], [T]
        rows.append(_picked_logprobs(_float_logits(row_logits, temperature), row_tokens))  # [T]
    if not rows:
        dtype = torch.float32 if logits.dtype in (torch.float16, torch.bfloat16) else logits.dtype
        return logits.new_zeros(tokens.shape, dtype=dtype)  # [0, T]
    return torch.stack(rows)  # [N, T]
