"""The world's vocabulary: colours, shapes and shades, and the class, category and query-kind lists of each
task's base and few-shot splits (see the package docstring for the design). Plain Python.
"""

COLOURS = {
    "red": (220, 45, 45),
    "green": (45, 170, 60),
    "blue": (45, 95, 225),
    "yellow": (235, 205, 35),
    "purple": (150, 65, 195),
}
"""Colour names and their middle-shade RGB."""

SHAPES = {"circle": 0, "triangle": 3, "square": 4, "star": 10, "cross": 12}
"""Shape names and their number of corners (a five-pointed star and a plus-shaped cross: their concave
corners make them locally readable; regular pentagons and hexagons, the first world's, differ from a circle
only along the outline, and a tiny tower trained for 1,500 steps told them apart no better than 50%:
RESULTS.md section 7)."""

FILLS = {"circle": "solid", "triangle": "rows", "square": "columns", "star": "dots", "cross": "checks"}
"""The fill pattern each shape is drawn with (`WorldConfig.fills`): stripes of 3 px along rows or columns,
2-px dots every 6 px, 3-px checks, or flat colour. A pattern repeats within every 14-px patch, so the shape
can be read from any patch of the object; through the outline alone the 5m tower learns shape no better
than 49% in 600 steps, where a small CNN reaches 99.8% (RESULTS.md section 9)."""

DIGIT_FILLS = ("solid", "rows", "columns", "checks", "dots", "falling", "rising", "grid", "rings", "bars")
"""The fill pattern of each digit value, 0 to 9 (`WorldConfig.digit_fills`), its second tone by default a light
tint of the digit's colour (a shape's is a dark one; `WorldConfig.digit_tone`): the value is then readable from any
patch of the digit, as a shape is from its pattern; drawn in flat colour, a digit's value is in its outline alone,
which the 5m tower does not learn (RESULTS.md section 22). `fill_pattern` draws them."""

SHADES = ("dark", "mid", "light")
"""Shades of a colour: mixed half-way with black, pure, mixed half-way with white."""

CLASSIFICATION_FEWSHOT = [
    f"{shade} {c} {s}"
    for c in ("red", "green", "blue", "yellow")
    for s in ("circle", "triangle", "square")
    for shade in ("dark", "light")
]
CLASSIFICATION_BASE = [f"{c} {s}" for c in COLOURS for s in SHAPES] + [
    f"{shade} {c} {s}"
    for c in COLOURS
    for s in SHAPES
    for shade in ("dark", "light")
    if f"{shade} {c} {s}" not in CLASSIFICATION_FEWSHOT
]
DETECTION_ALL = [f"{c} {s}" for c in COLOURS for s in SHAPES]
DETECTION_NOVEL = [
    f"{c} {s}" for ci, c in enumerate(COLOURS) for si, s in enumerate(SHAPES) if (ci + si) % 5 in (0, 1)
]
DETECTION_BASE = [c for c in DETECTION_ALL if c not in DETECTION_NOVEL]
DETECTION_FEWSHOT = DETECTION_NOVEL
GROUNDING_BASE_KINDS = ["name", "extreme"]
GROUNDING_REASONING_KINDS = ["size", "corners", "relation", "digit_value", "colour_match"]
GROUNDING_KINDS = GROUNDING_BASE_KINDS + GROUNDING_REASONING_KINDS

CLASSIFICATION_PROBLEM = "What is the object in the image? Answer with its class name."
GROUNDING_PROBLEM = "Find {expression} in the image."
