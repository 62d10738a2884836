"""Stage 1 of the base model: the vision tower learns to see the world before it meets the language model.

    for step in steps:
        scenes   = base-class scenes, fresh each step (a function of seed and step)
        tokens   = encode_images(tower, scenes)               one token per 28 px cell, raster order
        outputs  = DenseHeads(tokens)                         throw-away heads, never saved in the model
        loss     = per-token cross-entropy (kind, colour, shade, shape, digit, corner) + box-edge L1
                   + per-object pooled shape / digit cross-entropy
        AdamW step on the tower (merger included) and the heads

Targets are exact, read from the scene's masks (`visual_rft.world.dense`). Only base classification classes
and base detection categories are drawn, as the language stages see them: the few-shot compositions stay
unseen. The tower is written back into an ordinary model folder; the heads go to `heads.pt` beside it.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from visual_rft.checks import check_at_least, check_rate, check_share
from visual_rft.data.files import atomic_path
from visual_rft.models.forward import encode_images
from visual_rft.models.loading import load_model, load_processor, resolve_device
from visual_rft.world import CLASSIFICATION_BASE, COLOURS, DETECTION_BASE, SHADES, SHAPES, WorldConfig
from visual_rft.world.dense import CELL, NORMAL_BINS, SHAPE_CLASSES, cell_targets
from visual_rft.world.tasks import classification_scene, detection_scene

MAX_CELLS = WorldConfig().image_size[1] // CELL
"""Most cells along an image side (the `col` and `row` heads' classes)."""
CORNER_COUNTS = sorted({k for k in SHAPES.values() if k})
"""The corner counts of the world's polygons; the corner head's classes are 'none', then these."""
CORNER_CLASS = np.full(max(CORNER_COUNTS) + 1, -1)
CORNER_CLASS[[0, *CORNER_COUNTS]] = range(len(CORNER_COUNTS) + 1)
"""Corner count of a cell (0: none) -> the corner head's class."""
TOKEN_HEADS = {
    "kind": 3,
    "colour": len(COLOURS),
    "shade": len(SHADES),
    "shape": len(SHAPE_CLASSES),
    "digit": 10,
    "corner": len(CORNER_COUNTS) + 1,
    "normal": NORMAL_BINS + 1,
}
"""Per-token classification heads and their number of classes."""
POSITION_HEADS = {"col": MAX_CELLS, "row": MAX_CELLS}
"""With `position_weight` > 0, also: the token's own cell in the image (plus its object's box edges in
image cells, a regression). RoPE in the tower (and in the language model) carries only relative positions, and a value
vector none at all, so without them no token knows where in the image it is, and no answer can say where
an object is (a probe of the random tower reads a token's column at chance: RESULTS.md section 8)."""


@dataclass
class VisionStageConfig:
    steps: int = 2000
    """Optimizer steps (fresh images every step: the world is infinite)."""
    batch_size: int = 32
    """Images per step."""
    lr: float = 1e-3
    """Peak learning rate (cosine decay after warm-up)."""
    warmup_steps: int = 100
    """Linear warm-up steps."""
    detection_share: float = 0.5
    """Share of multi-object detection scenes in a batch (the rest: one big base-class object)."""
    box_weight: float = 1.0
    """Weight of the box-edge regression loss."""
    position_weight: float = 0.0
    """Weight of the absolute-position losses: each token's own cell (`col`, `row`) and its object's box edges
    in image cells (0: neither, and the tower learns relative offsets only, as the shipped base's did)."""
    pooled_weight: float = 1.0
    """Weight of the per-object pooled shape and digit losses."""
    corner_weight: float = 10.0
    """Weight of the cells that hold a corner in the corner loss (they are few: without it the head learns
    to say 'no corner' everywhere)."""
    seed: int = 0
    """Seed of the scenes (step s draws from PCG64([seed, 1, s]): resuming is exact)."""
    device: str = "auto"
    """Where the tower trains: auto (a CUDA GPU when there is one, else the CPU), cpu, cuda, cuda:1. The
    weights stay fp32 on every device; the scenes are drawn on the CPU either way."""
    workers: int = 0
    """Processes that draw the next steps' scenes, their pixels and targets while the tower trains (0: drawn
    in the training process, between steps). A step's batch is a function of (seed, step), so the run is
    the same either way; on a GPU the drawing (about 0.1 s a step on one core) is the step's bottleneck."""
    save_every: int = 500
    """Write a resumable checkpoint every N steps (and at the end); 0: at the end only."""
    log_every: int = 25
    """Append metrics to metrics.jsonl every N steps (and at the end); 0: at the end only."""
    progress: bool = True
    """Progress bar."""
    world: WorldConfig = field(default_factory=WorldConfig)
    """How scenes are drawn (in `vrft world pretrain`, the pre-training files' scenes too)."""


class DenseHeads(nn.Module):
    """Linear read-outs of the tower's tokens: per token, and per object (its tokens averaged)."""

    def __init__(self, hidden: int, position: bool = False):
        super().__init__()
        self.names = {**TOKEN_HEADS, **(POSITION_HEADS if position else {})}
        """The classification heads and their classes (the position heads only when asked for)."""
        self.boxes = 8 if position else 4
        """Box outputs: 4 edges relative to the cell, then (position) 4 in image cells."""
        self.token = nn.Linear(hidden, sum(self.names.values()) + self.boxes)
        self.pooled = nn.Linear(hidden, len(SHAPE_CLASSES) + 10)  # shape, digit value

    def forward(self, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.token(tokens)  # [n, C + 4]
        classes, boxes = out[:, : -self.boxes], out[:, -self.boxes :]  # [n, C], [n, 4 or 8]
        logits = dict(zip(self.names, classes.split(list(self.names.values()), dim=-1)))
        logits["box"] = boxes[:, :4]  # [n, 4]
        if self.boxes == 8:
            logits["abs_box"] = boxes[:, 4:]  # [n, 4]
        return logits


def draw_batch(cfg: VisionStageConfig, step: int, n: int | None = None) -> list:
    """The scenes of one step (base classes and categories only), a function of (seed, step)."""
    rng = np.random.Generator(np.random.PCG64([cfg.seed, 1, step]))
    out = []
    for _ in range(n or cfg.batch_size):
        if rng.random() < cfg.detection_share:
            out.append(detection_scene(rng, cfg.world, DETECTION_BASE))
        else:
            label = CLASSIFICATION_BASE[rng.integers(len(CLASSIFICATION_BASE))]
            out.append(classification_scene(rng, cfg.world, label))
    return out  # [(image, scene)]


def batch_targets(scenes: list) -> dict[str, torch.Tensor]:
    """Every image's flat targets, concatenated in token order; `obj` made unique across images."""
    rows, offset = [], 0
    for _, scene in scenes:
        t = cell_targets(scene).flat()
        row, col = np.mgrid[0 : scene.height // CELL, 0 : scene.width // CELL]  # [r, c] each token's cell
        t["row"], t["col"] = row.reshape(-1), col.reshape(-1)
        centre = np.stack([col, row, col, row], -1).reshape(-1, 4) + 0.5  # [n, 4] in cells
        t["abs_box"] = (t["box"] + centre).astype(np.float32)  # [n, 4] the object's edges in image cells
        t["obj"] = np.where(t["obj"] >= 0, t["obj"] + offset, -1)
        t["corner"] = CORNER_CLASS[t["corner"]]
        t["pooled_shape"] = np.array([SHAPE_CLASSES.index(o.shape) for o in scene.objects], np.int64)
        t["pooled_digit"] = np.array([o.digit if o.kind == "digit" else -1 for o in scene.objects], np.int64)
        offset += len(scene.objects)
        rows.append(t)
    return {k: torch.from_numpy(np.concatenate([r[k] for r in rows])) for k in rows[0]}


def pooled(tokens: torch.Tensor, obj: torch.Tensor, n_objects: int) -> tuple[torch.Tensor, torch.Tensor]:
    """([n_objects, H] the mean token of each object, [n_objects] whether it owns any token)."""
    keep = obj >= 0  # [n]
    sums = tokens.new_zeros(n_objects, tokens.shape[-1]).index_add_(0, obj[keep], tokens[keep])  # [O, H]
    counts = torch.bincount(obj[keep], minlength=n_objects).float()  # [O]
    return sums / counts.clamp(min=1)[:, None], counts > 0


def dense_loss(heads: DenseHeads, tokens: torch.Tensor, t: dict, cfg: VisionStageConfig):
    """(loss, metrics) of one batch: tokens [n, H], targets from `batch_targets`."""
    logits = heads(tokens)
    loss, metrics = tokens.new_zeros(()), {}
    for name in heads.names:
        target = t[name]  # [n], -1 where it does not apply
        if (target >= 0).any():
            weight = None
            if name == "corner":
                weight = torch.full((heads.names[name],), cfg.corner_weight, device=tokens.device)
                weight[0] = 1.0
            scale = cfg.position_weight if name in POSITION_HEADS else 1.0
            loss = loss + scale * F.cross_entropy(logits[name], target, weight=weight, ignore_index=-1)
            metrics[f"acc/{name}"] = _accuracy(logits[name], target)
    if (t["corner"] > 0).any():  # the corner class on the cells that hold one
        metrics["acc/corner_found"] = _accuracy(
            logits["corner"], torch.where(t["corner"] > 0, t["corner"], -1)
        )
    on_object = t["obj"] >= 0  # [n]
    if on_object.any():
        box = F.smooth_l1_loss(logits["box"][on_object], t["box"][on_object])
        loss = loss + cfg.box_weight * box
        error = (logits["box"][on_object] - t["box"][on_object]).detach().abs().mean()
        metrics["box_l1_px"] = float(error) * CELL
        if "abs_box" in logits:
            loss = loss + cfg.position_weight * F.smooth_l1_loss(
                logits["abs_box"][on_object], t["abs_box"][on_object]
            )
            error = (logits["abs_box"][on_object] - t["abs_box"][on_object]).detach().abs().mean()
            metrics["abs_box_l1_px"] = float(error) * CELL
    objects, seen = pooled(tokens, t["obj"], len(t["pooled_shape"]))  # [O, H], [O]
    out = heads.pooled(objects[seen])  # [O', 16]
    shape, digit = t["pooled_shape"][seen], t["pooled_digit"][seen]  # [O']
    loss = loss + cfg.pooled_weight * F.cross_entropy(out[:, : len(SHAPE_CLASSES)], shape)
    metrics["acc/pooled_shape"] = _accuracy(out[:, : len(SHAPE_CLASSES)], shape)
    if (digit >= 0).any():
        loss = loss + cfg.pooled_weight * F.cross_entropy(
            out[:, len(SHAPE_CLASSES) :], digit, ignore_index=-1
        )
        metrics["acc/pooled_digit"] = _accuracy(out[:, len(SHAPE_CLASSES) :], digit)
    return loss, metrics


def _accuracy(logits: torch.Tensor, target: torch.Tensor) -> float:
    """Share of the targets >= 0 predicted right (callers check that there is one)."""
    valid = target >= 0
    return float((logits[valid].argmax(-1) == target[valid]).float().mean())


class SceneStream(torch.utils.data.Dataset):
    """Item i: step `start` + i's batch ready for the tower, (pixel_values, image_grid_thw, targets), drawn
    by `draw_batch` and `batch_targets` (in a DataLoader's worker when `workers` > 0)."""

    def __init__(self, cfg: VisionStageConfig, processor, start: int):
        self.cfg, self.processor, self.start = cfg, processor, start

    def __len__(self) -> int:
        return self.cfg.steps - self.start

    def __getitem__(self, i: int):
        scenes = draw_batch(self.cfg, self.start + i)
        inputs = self.processor.image_processor(images=[image for image, _ in scenes], return_tensors="pt")
        return inputs["pixel_values"], inputs["image_grid_thw"], batch_targets(scenes)


def tower_tokens(model, processor, images) -> torch.Tensor:
    """[n_tokens, H] the merged tokens of `images`, image after image, each in raster order."""
    inputs = processor.image_processor(images=images, return_tensors="pt").to(model.device)
    return encode_images(model, inputs["pixel_values"], inputs["image_grid_thw"]).tokens  # [n_tokens, H]


def check_vision_stage(cfg: VisionStageConfig) -> None:
    """Refuse a stage 1 config by field name and range, before the model loads (`visual_rft.checks`)."""
    check_rate(cfg.lr, "lr")
    check_share(cfg.detection_share, "detection_share")
    check_at_least({"batch_size": cfg.batch_size}, 1)
    check_at_least(
        {
            "steps": cfg.steps,
            "warmup_steps": cfg.warmup_steps,
            "workers": cfg.workers,
            "save_every": cfg.save_every,
            "log_every": cfg.log_every,
            "box_weight": cfg.box_weight,
            "position_weight": cfg.position_weight,
            "pooled_weight": cfg.pooled_weight,
            "corner_weight": cfg.corner_weight,
        },
        0,
    )


def train_vision(
    model_dir: str | Path, out_dir: str | Path, cfg: VisionStageConfig, stop_after: int | None = None
) -> Path:
    """Train the tower of the model in `model_dir`; writes OUT/model (the whole model, the tower trained),
    OUT/heads.pt, OUT/metrics.jsonl and OUT/config.json; resumes from OUT/checkpoint.pt. Returns OUT/model.
    `stop_after`: stop (with a checkpoint) after that many steps of this call, as an interrupted run would."""
    check_vision_stage(cfg)
    out = Path(out_dir)
    done = out / "done.json"
    if done.exists() and json.loads(done.read_text())["steps"] == cfg.steps:
        return out / "model"  # finished: not run again
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=1, default=str))
    device = resolve_device(cfg.device)
    model = load_model(model_dir, device=str(device), dtype="float32")
    processor = load_processor(model_dir)
    tower = model.model.visual
    torch.manual_seed(cfg.seed)  # the heads' initial weights: a run is a function of its config
    heads = DenseHeads(model.config.text_config.hidden_size, position=cfg.position_weight > 0).to(device)
    params = [*tower.parameters(), *heads.parameters()]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr)
    warm, total = max(1, cfg.warmup_steps), max(1, cfg.steps)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + np.cos(np.pi * min(1.0, s / total)))
    )
    start = 0
    if (out / "checkpoint.pt").exists():
        state = torch.load(out / "checkpoint.pt", weights_only=False, map_location=device)
        tower.load_state_dict(state["tower"])
        heads.load_state_dict(state["heads"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        start = state["step"]
    tower.train()
    bar = tqdm(range(start, cfg.steps), desc="vision", disable=not cfg.progress, dynamic_ncols=True)
    batches = torch.utils.data.DataLoader(
        SceneStream(cfg, processor, start),
        batch_size=None,  # an item is a whole step's batch
        num_workers=cfg.workers,
        prefetch_factor=4 if cfg.workers else None,
    )
    t0 = time.perf_counter()
    for step, (pixels, grid, targets) in zip(bar, batches):
        tokens = encode_images(model, pixels.to(device), grid.to(device)).tokens  # [n, H]
        targets = {k: v.to(device) for k, v in targets.items()}
        loss, metrics = dense_loss(heads, tokens, targets, cfg)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, 1.0))
        optimizer.step()
        schedule.step()
        n = step + 1
        if (cfg.log_every and n % cfg.log_every == 0) or n == cfg.steps:
            row = {"step": n, "loss": float(loss.detach()), "grad_norm": grad_norm, **metrics}
            row["seconds"] = round(time.perf_counter() - t0, 1)
            with open(out / "metrics.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")
            bar.set_postfix(loss=f"{row['loss']:.3f}", shape=f"{metrics['acc/pooled_shape']:.2f}")
        stopping = stop_after is not None and n - start >= stop_after
        if (cfg.save_every and n % cfg.save_every == 0) or n == cfg.steps or stopping:
            with atomic_path(out / "checkpoint.pt") as tmp:
                torch.save(
                    {
                        "tower": tower.state_dict(),
                        "heads": heads.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "schedule": schedule.state_dict(),
                        "step": n,
                    },
                    tmp,
                )
        if stopping:
            bar.close()
            return out / "checkpoint.pt"
    bar.close()
    model.eval()
    with atomic_path(out / "model") as tmp:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
    torch.save(heads.state_dict(), out / "heads.pt")
    done.write_text(json.dumps({"steps": cfg.steps}))
    return out / "model"


@torch.no_grad()
def probe(
    model, processor, seed: int = 1, n_train: int = 300, n_test: int = 200, world=None
) -> dict[str, float]:
    """Held-out accuracy of linear probes (logistic regression) on each object's mean and max tower token,
    for its shape, colour and shade: what the tower's features carry, whatever the heads or the language model do.
    One big base-class object per image, from a stream of their own (PCG64([seed, 2, i]))."""
    world = world or WorldConfig()
    feats, labels = [], []
    for i in range(n_train + n_test):
        rng = np.random.Generator(np.random.PCG64([seed, 2, i]))
        image, scene = classification_scene(rng, world, CLASSIFICATION_BASE[i % len(CLASSIFICATION_BASE)])
        tokens = tower_tokens(model, processor, [image]).cpu()  # [n, H]
        obj = torch.from_numpy(cell_targets(scene).flat()["obj"])
        mean, _ = pooled(tokens, obj, len(scene.objects))
        top = tokens[obj == 0].amax(0) if (obj == 0).any() else torch.zeros_like(mean[0])  # [H]
        feats.append(torch.cat([mean[0], top]).float().numpy())  # mean and max: a corner token is rare
        o = scene.objects[0]
        labels.append((o.shape, o.colour, o.shade))
    x = np.stack(feats)  # [N, H]
    x = (x - x[:n_train].mean(0)) / (x[:n_train].std(0) + 1e-6)
    out = {}
    for j, name in enumerate(("shape", "colour", "shade")):
        y = np.array([lab[j] for lab in labels])
        fit = LogisticRegression(max_iter=2000).fit(x[:n_train], y[:n_train])
        out[name] = float((fit.predict(x[n_train:]) == y[n_train:]).mean())
    return out
