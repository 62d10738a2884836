"""`vrft demo`: for now, build the tiny model and answer a detection question about one synthetic image.

The full demo (base vs SFT vs RFT on few-shot detection) arrives with the synthetic world (issue 6).
"""

from __future__ import annotations

import time
from pathlib import Path

from PIL import Image, ImageDraw

from visual_rft.data.types import Box, DetectionTarget, Sample


def _scene(path: Path) -> Sample:
    img = Image.new("RGB", (224, 224), "white")
    ImageDraw.Draw(img).ellipse((40, 60, 120, 140), fill="red")
    img.save(path)
    return Sample(
        "demo-0",
        [str(path)],
        "detection",
        "Detect all objects belonging to the category 'red circle'.",
        DetectionTarget((Box(40, 60, 121, 141, "red circle"),), "red circle"),
        224,
        224,
    )


def run_demo(out_dir: Path) -> int:
    import torch

    from visual_rft.models.inputs import encode_prompts
    from visual_rft.models.loading import coord_convention, load_model, load_processor, model_family
    from visual_rft.models.tiny import write_tiny

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    model_dir = write_tiny(out_dir / "tiny-model")
    model, processor = load_model(model_dir), load_processor(model_dir)
    sample = _scene(out_dir / "scene.png")
    inputs, _ = encode_prompts([sample], processor, coord_convention(model_family(model.config)))
    torch.manual_seed(0)
    out = model.generate(**inputs, max_new_tokens=48, do_sample=True)
    answer = processor.batch_decode(out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)[0]
    print(f"model folder: {model_dir}\nimage: {sample.image}\nquestion: {sample.problem}")
    print(f"answer of the untrained tiny model: {answer!r}")
    print(f"done in {time.perf_counter() - t0:.1f}s; outputs in {out_dir}")
    return 0
