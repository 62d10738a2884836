"""The synthetic world: an experiment's data. Seeded scenes of coloured shapes and handwritten digits, with exact ground truth.

Scenes are 112 to 224 px (sides are multiples of 28, so a Qwen2.5-VL processor with patch 14 and
merge 2 does not resize them). Objects are polygons and circles in five colours, each shape
filled with its own pattern (vocab.FILLS: stripes, dots, checks, or flat for circles), and digits from
scikit-learn's bundled 8x8 set, upscaled (bilinear), slightly rotated, thresholded and coloured.
Optional clutter (specks of a few pixels, kept away from objects) and Gaussian pixel noise (off by default).

Ground truth is exact. Each object is rasterised once into a boolean mask; its box is the tight bound of
that mask, in the pixel-edge convention (the box covers pixels x1 <= x < x2, y1 <= y < y2). Objects are
placed by integer translation of the mask, so the box is exactly where the pixels are. Objects never
share or touch pixels (masks kept `min_gap` px apart) and their boxes overlap at most `max_iou`.

The four tasks of the paper, and their base / few-shot design:

- Classification (fine-grained). One main object per image. CLASSIFICATION_FEWSHOT are 24 fine classes
  "shade colour shape" ("dark red triangle" vs "light red triangle": red, green, blue, yellow x circle,
  triangle, square x dark, light). CLASSIFICATION_BASE, for pre-training, are the 25 "colour shape"
  classes in the middle shade plus the dark and light shades of every other colour-shape pair (purple
  ones, stars, crosses; 26 classes): the base model has seen every colour, shape and shade word,
  but never a few-shot class, which it must learn as a new composition from a few shots (as the paper's
  base model knows flowers and cars but not the fine species). Like detection's novel categories.
- Detection. Every instance of one named "colour shape" category, among distractors (other categories,
  digits, clutter); 0 to 4 instances, with some queries for absent categories (boxes=() -> 'No Objects').
  The 25 categories are split so every colour and every shape is seen in the base set:
  DETECTION_NOVEL (10) are the combinations with (colour index + shape index) % 5 in {0, 1}; the other
  15 are DETECTION_BASE. Base data is pre-training material and the open-vocabulary training set;
  DETECTION_NOVEL is both the open-vocabulary evaluation set and the few-shot detection set
  (DETECTION_FEWSHOT): novel compositions of known attributes. A scene draws objects only from the
  categories it is built for (plus digits), so a base-split image never shows a novel object at all.
- Reasoning grounding. One box from an instruction generated from the scene graph and verified to
  match exactly one object (otherwise another scene is drawn). GROUNDING_BASE_KINDS are plain
  referring expressions ("the red triangle", "the leftmost digit"), for pre-training;
  GROUNDING_REASONING_KINDS need a step of reasoning (size comparison, corner counts, spatial
  relations, digit values, colour matching), for the few-shot experiments. `meta` holds the kind,
  the structured query and the scene graph, so any sample can be re-checked.
- Open-vocabulary detection: detection built with categories=DETECTION_BASE (meta split "base") for
  training and DETECTION_NOVEL (meta split "novel") for evaluation.

The modules: `vocab` (colours, shapes, class and category lists), `scene` (objects, masks, placement,
drawing), `tasks` (the scenes and queries of each task), `build` (JSONL files and the whole suite).

Determinism: every image i of a file draws from its own generator PCG64([seed, crc32(name), i]), so the
same (seed, name) gives byte-identical JSONL and identical pixels, a longer file extends a shorter one,
and files of different names (a training pool and its test set) use different random streams.
"""

from visual_rft.world.build import SHOTS, build, build_suite, split_of, world_settings
from visual_rft.world.patterns import fill_pattern, second_tone
from visual_rft.world.scene import (
    ObjectSpec,
    Scene,
    WorldConfig,
    draw,
    layout_scene,
    make_object,
    mask_of,
    random_object,
    render_scene,
    scene_graph,
)
from visual_rft.world.tasks import (
    QUERIES,
    classification_scene,
    detection_queries,
    detection_scene,
    grounding_example,
    grounding_scene,
)
from visual_rft.world.vocab import (
    CLASSIFICATION_BASE,
    CLASSIFICATION_FEWSHOT,
    CLASSIFICATION_PROBLEM,
    COLOURS,
    DETECTION_ALL,
    DETECTION_BASE,
    DETECTION_FEWSHOT,
    DETECTION_NOVEL,
    DIGIT_FILLS,
    FILLS,
    GROUNDING_BASE_KINDS,
    GROUNDING_KINDS,
    GROUNDING_PROBLEM,
    GROUNDING_REASONING_KINDS,
    SHADES,
    SHAPES,
)

__all__ = [
    "CLASSIFICATION_BASE",
    "CLASSIFICATION_FEWSHOT",
    "CLASSIFICATION_PROBLEM",
    "COLOURS",
    "DETECTION_ALL",
    "DETECTION_BASE",
    "DETECTION_FEWSHOT",
    "DETECTION_NOVEL",
    "GROUNDING_BASE_KINDS",
    "GROUNDING_KINDS",
    "GROUNDING_PROBLEM",
    "GROUNDING_REASONING_KINDS",
    "QUERIES",
    "DIGIT_FILLS",
    "FILLS",
    "SHADES",
    "SHAPES",
    "SHOTS",
    "ObjectSpec",
    "Scene",
    "WorldConfig",
    "build",
    "build_suite",
    "world_settings",
    "classification_scene",
    "detection_queries",
    "detection_scene",
    "draw",
    "fill_pattern",
    "grounding_example",
    "grounding_scene",
    "layout_scene",
    "make_object",
    "mask_of",
    "random_object",
    "render_scene",
    "scene_graph",
    "second_tone",
    "split_of",
]
