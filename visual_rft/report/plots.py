"""Pictures of a run: the reward curve, and test images with the true (green) and predicted (red) boxes."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image, ImageDraw

from visual_rft.data.answer import detection_answer, grounding_answer
from visual_rft.data.coords import answer_to_pixels
from visual_rft.data.types import Box, DetectionTarget, GroundingTarget


def reward_curve(metrics_jsonl: str | Path, out_png: str | Path, keys: tuple[str, ...] | None = None) -> Path:
    """Plot each reward's mean (and the total) per step from a run's metrics.jsonl."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(x) for x in Path(metrics_jsonl).read_text().splitlines() if x.strip()]
    keys = keys or tuple(
        k for k in rows[0] if k == "reward/total" or (k.startswith("reward/") and k.endswith("/mean"))
    )
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=110)
    steps = [r["step"] for r in rows]
    for k in keys:
        ax.plot(steps, [r.get(k) for r in rows], label=k.removeprefix("reward/").removesuffix("/mean"))
    ax.set_xlabel("step")
    ax.set_ylabel("reward")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_png)
    plt.close(fig)
    return Path(out_png)


def predicted_boxes(completion: str | None, task: str, frame) -> list[tuple[Box, float]]:
    """The boxes a completion answers, in original-image pixels, with their confidences."""
    if completion is None or frame is None:
        return []
    if task == "detection":
        return [
            (answer_to_pixels(p.box, frame), p.confidence) for p in detection_answer(completion).predictions
        ]
    if task == "grounding":
        box = grounding_answer(completion)
        return [] if box is None else [(answer_to_pixels(box, frame), 1.0)]
    return []


def draw_prediction(
    image_path: str, target, predictions: list[tuple[Box, float]], out_png: str | Path, scale: int = 2
) -> Path:
    """The image, enlarged, with true boxes in green and predicted boxes (with confidence) in red."""
    with Image.open(image_path) as im:
        im = im.convert("RGB")
    im = im.resize((im.width * scale, im.height * scale), Image.NEAREST)
    draw = ImageDraw.Draw(im)
    truth = (
        list(target.boxes)
        if isinstance(target, DetectionTarget)
        else ([target.box] if isinstance(target, GroundingTarget) else [])
    )
    for b in truth:
        draw.rectangle([v * scale for v in b.xyxy], outline=(0, 200, 0), width=2)
    for b, c in predictions:
        draw.rectangle([v * scale for v in b.xyxy], outline=(230, 0, 0), width=2)
        draw.text((b.x1 * scale + 2, b.y1 * scale + 1), f"{c:.2f}", fill=(230, 0, 0))
    im.save(out_png)
    return Path(out_png)
