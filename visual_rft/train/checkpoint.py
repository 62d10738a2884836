"""Checkpoints that resume exactly: weights (Hugging Face / peft format), optimizer, scheduler, RNG states
and the step (the data position is a function of the step, see `data_order`).

Written atomically: everything goes to `checkpoint-N.tmp/`, which is renamed to `checkpoint-N/` only when
complete, so a run killed mid-save leaves the previous checkpoint intact. The last `keep_last` are kept.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path

import numpy as np
import torch

from visual_rft.data.files import atomic_path

_NAME = re.compile(r"^checkpoint-(\d+)$")


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    run_dir = Path(run_dir)
    found = [(int(m.group(1)), p) for p in run_dir.glob("checkpoint-*") if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def save_checkpoint(
    run_dir: str | Path,
    step: int,
    model,
    processor,
    optimizer,
    scheduler,
    extra: dict | None = None,
    keep_last: int = 2,
    precision=None,
    model_state: dict | None = None,
    optimizer_state: dict | None = None,
) -> Path:
    """Write checkpoint-`step` (weights as they are trained: fp32 master weights, or a LoRA adapter;
    optimizer, scheduler, the fp16 grad scaler of `precision`, RNG states). `model_state` /
    `optimizer_state`: the whole states of a sharded model, gathered by the caller (else the model's and
    optimizer's own)."""
    run_dir = Path(run_dir)
    final = run_dir / f"checkpoint-{step}"
    with atomic_path(final) as tmp:
        tmp.mkdir()
        model.save_pretrained(tmp / "model", **({} if model_state is None else {"state_dict": model_state}))
        processor.save_pretrained(tmp / "model")
        torch.save(
            {
                "optimizer": optimizer.state_dict() if optimizer_state is None else optimizer_state,
                "scheduler": scheduler.state_dict(),
                "precision": precision.state_dict() if precision is not None else {},
                "rng": rng_state(),
            },
            tmp / "trainer_state.pt",
        )
        (tmp / "state.json").write_text(json.dumps({"step": step, **(extra or {})}, indent=1))
    for old in list_checkpoints(run_dir)[:-keep_last] if keep_last > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_trainer_state(ckpt: Path, optimizer, scheduler, precision=None, load_optimizer=None) -> dict:
    """Restore optimizer, scheduler, grad scaler and RNG states; returns state.json (with 'step').
    `load_optimizer(state)`: how the optimizer takes its state (a sharded one: from the whole state)."""
    state = torch.load(ckpt / "trainer_state.pt", weights_only=False)
    (load_optimizer or optimizer.load_state_dict)(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if precision is not None:
        precision.load_state_dict(state.get("precision", {}))
    set_rng_state(state["rng"])
    return json.loads((ckpt / "state.json").read_text())
