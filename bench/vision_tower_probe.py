"""Stage 1 of the base alone, then the held-out linear probe of the tower (shape, colour, shade).

    python bench/vision_tower_probe.py --out runs/vprobe/pentagons --steps 1500 --shapes pentagon,hexagon
    python bench/vision_tower_probe.py --out runs/vprobe/stars --steps 750
    python bench/vision_tower_probe.py --out runs/vprobe/x --steps 250 lr=3e-3 corner_weight=1
    python bench/vision_tower_probe.py --out runs/vprobe/pos --steps 300 position_weight=1 warmup_steps=100 log_every=25
    python bench/vision_tower_probe.py --out runs/vprobe/posg --steps 300 --gradient position_weight=1 warmup_steps=100 log_every=25

A fresh tiny model (5m by default), `train_vision` for `--steps` with the VisionStageConfig overrides
given as key=value, then `probe` on 300 + 200 single-object images. Prints and writes OUT/result.json.
--gradient: every scene drawn with the background carrying its pixel position (localisation_probe.py's).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from localisation_probe import gradient_draw  # noqa: E402
from world_shapes import add_shapes_option, apply_shapes_option  # noqa: E402

from visual_rft.config import load_config  # noqa: E402
from visual_rft.models.loading import load_model, load_processor  # noqa: E402
from visual_rft.models.tiny import write_tiny  # noqa: E402
from visual_rft.recipes.vision_tower import VisionStageConfig, probe, train_vision  # noqa: E402
from visual_rft.world import scene, tasks  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=250)
    parser.add_argument("--size", default="5m")
    add_shapes_option(parser)
    parser.add_argument("--gradient", action="store_true", help="backgrounds that carry their pixel position")
    parser.add_argument("overrides", nargs="*", help="VisionStageConfig key=value")
    args = parser.parse_args()
    shapes = apply_shapes_option(args)
    if args.gradient:  # every module that calls draw() gets the gradient version
        scene.draw = tasks.draw = gradient_draw(scene.draw)
    init = write_tiny(args.out / "init", "qwen2_5_vl", args.size, seed=0)
    extra = [f"steps={args.steps}", f"warmup_steps={min(100, args.steps // 5)}", "progress=false"]
    cfg = load_config(
        VisionStageConfig, None, [*extra, f"log_every={max(1, args.steps // 10)}", *args.overrides]
    )
    t0 = time.perf_counter()
    model = train_vision(init, args.out / "vision", cfg)
    result = {
        "size": args.size,
        "steps": args.steps,
        "shapes": shapes,
        "gradient": args.gradient,
        "overrides": args.overrides,
        "train_s": round(time.perf_counter() - t0),
        "probe_init": probe(load_model(init, device="cpu"), load_processor(init)),
        "probe": probe(load_model(model, device="cpu"), load_processor(model)),
    }
    (args.out / "result.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
