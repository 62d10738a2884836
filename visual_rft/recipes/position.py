"""Recipe piece: teach the language model's first layers to write where each image token is.

RoPE gives attention relative positions only and a value carries none, so the box of the object a question
names can be copied by the heads that pick that object (`recipes/binding.py`) only if some earlier layer has
written the position into the object's tokens (RESULTS.md section 16: after a 3,000-step locate stage a
linear probe reads an object's box from its tokens to 23 px entering layer 2, 13 px entering layer 3). This
loss asks for it directly, on the residual stream entering one decoder layer, from the world's exact boxes:

    for each image token: its own column and row, in cells;
    for each token on an object: that object's box (x1, y1, x2, y2), in cells.

"Readable" means linearly: a ridge probe fitted in closed form on half of the micro-batch's queries is scored
(mean squared error, in cells) on the other half, and the other way round; the gradient flows through both
the fit and the score. Nothing is added to the model (no head to save or resume), and a checkpoint stays a
plain Qwen2.5-VL.
"""

from __future__ import annotations

import torch

from visual_rft.models.forward import core_model

RIDGE = 1e-2
"""The probe's ridge penalty, relative to the mean of the fold's feature variances."""


def check_position_layer(layer: int, layers: int) -> None:
    """`binding.position_layer` must be a layer 1..layers-1 of a `layers`-layer language model."""
    if not 1 <= layer < layers:
        raise ValueError(
            f"binding.position_layer: {layer} is not a layer 1..{layers - 1} of a {layers}-layer "
            "language model (the residual entering it is probed; layer 0's input is the frozen tower's)"
        )


class ResidualRecorder:
    """A forward pre-hook that keeps the hidden states ([B, S, H]) entering one decoder layer at its last call."""

    def __init__(self, model, layer: int):
        decoder = core_model(model).model.language_model.layers
        check_position_layer(layer, len(decoder))
        self.hidden: torch.Tensor | None = None
        self.handle = decoder[layer].register_forward_pre_hook(self._keep, with_kwargs=True)

    def _keep(self, module, args, kwargs):
        self.hidden = args[0] if args else kwargs["hidden_states"]


def ridge_readout(x_fit: torch.Tensor, y_fit: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """[m, k] the ridge regression of y on x fitted on (x_fit [n, H], y_fit [n, k]), applied to x [m, H]."""
    mu, nu = x_fit.mean(0), y_fit.mean(0)  # [H], [k]
    a = x_fit - mu  # [n, H]
    gram = a.T @ a  # [H, H]
    penalty = RIDGE * gram.diagonal().mean().clamp_min(1e-6)
    w = torch.linalg.solve(
        gram + penalty * torch.eye(len(gram), device=a.device), a.T @ (y_fit - nu)
    )  # [H, k]
    return (x - mu) @ w + nu  # [m, k]


def crossfit_error(x: torch.Tensor, y: torch.Tensor, fold: torch.Tensor) -> torch.Tensor | None:
    """Mean squared error of y [n, k] read from x [n, H] by a ridge probe fitted on the other fold
    (`fold` [n] bool), over both folds; None when a fold has fewer rows than targets."""
    a, b = fold, ~fold
    if int(a.sum()) <= y.shape[1] or int(b.sum()) <= y.shape[1]:
        return None
    err_b = (ridge_readout(x[a], y[a], x[b]) - y[b]).pow(2).mean()
    err_a = (ridge_readout(x[b], y[b], x[a]) - y[a]).pow(2).mean()
    return (err_a + err_b) / 2


def position_loss(
    tokens: list[torch.Tensor], cells: list[torch.Tensor], owner_boxes: list[torch.Tensor]
) -> tuple[torch.Tensor | None, dict[str, float]]:
    """(loss, metrics) over one micro-batch's queries: per query, its image tokens' residuals [n_i, H], their
    own (column, row) [n_i, 2] and their object's box in cells [n_i, 4] (nan rows: background). The loss is
    the cross-fitted probes' mean squared error of the cell plus that of the object box; the metrics are their
    root mean squared errors in cells (detached), for the log."""
    if len(tokens) < 2:
        return None, {}
    fold = torch.cat(
        [torch.full((len(t),), i % 2 == 0, device=t.device) for i, t in enumerate(tokens)]
    )  # [N]
    x = torch.cat(tokens).float()  # [N, H]
    cell, box = torch.cat(cells), torch.cat(owner_boxes)  # [N, 2], [N, 4]
    on = ~torch.isnan(box[:, 0])  # [N]
    cell_err = crossfit_error(x, cell, fold)
    box_err = crossfit_error(x[on], box[on], fold[on])
    parts = [e for e in (cell_err, box_err) if e is not None]
    if not parts:
        return None, {}
    metrics = {
        f"position/{k}_rmse": float(e.detach().sqrt())
        for k, e in (("cell", cell_err), ("box", box_err))
        if e is not None
    }
    return sum(parts), metrics
