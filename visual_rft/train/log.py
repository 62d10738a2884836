"""Metrics to metrics.jsonl and TensorBoard; sample completions to samples.jsonl; a progress bar."""

from __future__ import annotations

import json
from pathlib import Path

from tqdm.auto import tqdm


def _truncate_after(path: Path, step: int) -> None:
    """Drop rows logged after `step` (by a run that was killed and is now resumed)."""
    if not path.exists():
        return
    keep = [
        line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step
    ]
    path.write_text("".join(line + "\n" for line in keep))


class RunLogger:
    def __init__(
        self,
        run_dir: str | Path,
        *,
        total_steps: int,
        start_step: int = 0,
        tensorboard: bool = True,
        progress: bool = True,
        desc: str = "train",
    ):
        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.metrics_path = self.dir / "metrics.jsonl"
        self.samples_path = self.dir / "samples.jsonl"
        for p in (self.metrics_path, self.samples_path):
            _truncate_after(p, start_step)
        self.tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(self.dir / "tensorboard"), purge_step=start_step + 1)
        self.bar = tqdm(
            total=total_steps, initial=start_step, desc=desc, disable=not progress, dynamic_ncols=True
        )

    def log(self, step: int, metrics: dict, postfix: dict | None = None) -> None:
        row = {"step": step, **{k: (round(v, 6) if isinstance(v, float) else v) for k, v in metrics.items()}}
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps(row) + "\n")
        if self.tb is not None:
            for k, v in metrics.items():
                if isinstance(v, (int, float)):
                    self.tb.add_scalar(k, v, step)
        if postfix:
            self.bar.set_postfix({k: f"{v:.3g}" for k, v in postfix.items()}, refresh=False)

    def samples(self, step: int, rows: list[dict]) -> None:
        with open(self.samples_path, "a") as f:
            for r in rows:
                f.write(json.dumps({"step": step, **r}) + "\n")

    def advance(self) -> None:
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()
        if self.tb is not None:
            self.tb.close()
