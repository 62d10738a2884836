"""Mixed precision as the field trains: fp32 master weights and optimizer state, bf16 or fp16 compute.

`run.precision` says how training computes; `model.dtype` says how weights load for inference (and for
weights that never change: the reference copy, a LoRA run's frozen base). The weights an optimizer
updates are always fp32: in bf16 an update of lr 1e-6 on a weight near 0.02 (bf16 spacing there: 1.2e-4)
rounds to nothing, and AdamW's eps of 1e-8 is 0 in fp16.

- ``fp32``: no autocast.
- ``bf16-mixed``: forward passes under ``torch.autocast(dtype=bfloat16)``; gradients land in fp32.
- ``fp16-mixed``: the same in float16, with a ``torch.amp.GradScaler`` (loss scaled up before backward,
  gradients unscaled before clipping, steps with inf/nan gradients skipped and the scale lowered).
- ``auto``: bf16-mixed on a CUDA device with bf16, fp32 otherwise (bf16 is 10-20x slower on a CPU).
"""

from __future__ import annotations

from contextlib import nullcontext

import torch

from visual_rft.train.optim import clip_and_check

PRECISIONS = ("fp32", "bf16-mixed", "fp16-mixed")
_COMPUTE = {"fp32": None, "bf16-mixed": torch.bfloat16, "fp16-mixed": torch.float16}
_HALF_NAMES = ("bf16", "bfloat16", "fp16", "float16")


def resolve_precision(name: str, device: torch.device) -> str:
    """`run.precision` -> one of PRECISIONS ("auto": bf16-mixed on a CUDA device with bf16, else fp32)."""
    if name == "auto":
        bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
        return "bf16-mixed" if bf16 else "fp32"
    if name not in PRECISIONS:
        raise ValueError(f"run.precision must be auto or one of {', '.join(PRECISIONS)}, got {name!r}")
    if name == "bf16-mixed" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError("run.precision=bf16-mixed: this GPU has no bf16; use fp16-mixed or fp32")
    return name


def policy_dtype(model_dtype: str, lora: bool) -> str:
    """The dtype the policy loads in for training. Its trainable weights must be fp32 (master weights):
    a full fine-tune refuses model.dtype=bf16/fp16 (it used to update bf16 weights in place, which at
    RL learning rates silently does not train); with LoRA the frozen base loads at model.dtype and the
    adapters are fp32 (peft's autocast_adapter_dtype)."""
    if lora:
        return model_dtype
    if str(model_dtype) in _HALF_NAMES:
        raise ValueError(
            f"model.dtype={model_dtype}: a full fine-tune keeps its trained weights in fp32 (bf16/fp16 "
            "weights updated in place round RL-sized updates to nothing). Set model.dtype=auto or fp32 "
            "and choose the compute with run.precision=bf16-mixed (or fp16-mixed); model.dtype is how "
            "weights load for inference, and for the frozen base of a LoRA run."
        )
    return "fp32"


def check_master_weights(params) -> None:
    """Every trainable tensor must be fp32 (or fp64); names the first that is not."""
    for p in params:
        if p.dtype not in (torch.float32, torch.float64):
            raise ValueError(f"a trainable weight of shape {tuple(p.shape)} is {p.dtype}, not fp32")


class Precision:
    """Autocast for the forward passes, loss scaling for fp16, and the guarded optimizer step."""

    def __init__(self, name: str, device: torch.device):
        self.name = resolve_precision(name, device)
        self.device_type = device.type
        self.compute_dtype = _COMPUTE[self.name]
        self.scaler = torch.amp.GradScaler(device.type) if self.name == "fp16-mixed" else None

    def autocast(self):
        """The context every forward of training runs in (rollout, reference, old and policy passes)."""
        if self.compute_dtype is None:
            return nullcontext()
        return torch.autocast(self.device_type, dtype=self.compute_dtype)

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def step(self, optimizer, params, max_grad_norm: float, loss_finite: bool = True) -> tuple[float, bool]:
        """Unscale (fp16), clip, and step unless the loss or a gradient is not finite (then the gradients
        are dropped); returns (gradient norm before clipping, whether the update was skipped)."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)
        grad_norm, grads_finite = clip_and_check(params, max_grad_norm)
        skipped = not (loss_finite and grads_finite)
        if skipped:
            optimizer.zero_grad(set_to_none=True)
        elif self.scaler is not None:
            self.scaler.step(optimizer)
        else:
            optimizer.step()
        if self.scaler is not None:
            self.scaler.update()  # lowers the scale after an inf/nan, raises it after a run of good steps
        return grad_norm, skipped

    def state_dict(self) -> dict:
        return {"scaler": self.scaler.state_dict()} if self.scaler is not None else {}

    def load_state_dict(self, state: dict) -> None:
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
