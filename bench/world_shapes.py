"""Experiments only: run the world with another shape vocabulary, in this process.

    use_shapes(["pentagon", "hexagon"])   # star -> pentagon, cross -> hexagon, everywhere the world derives from them

    add_shapes_option(parser); ...; label = apply_shapes_option(args)   # the same, as a script's --shapes

The library's world has one vocabulary (visual_rft/world/vocab.py). To measure other shapes without
editing it (the first world's regular pentagon and hexagon, say), this swaps the two shapes the few-shot
classes do not use (star and cross) in place, before any scene is drawn: the shape table, the class and category lists built from it, and the stage-1 tables derived from
those. Call it first thing in a bench script.
"""

from __future__ import annotations

import argparse

import numpy as np

from visual_rft.recipes import vision_tower
from visual_rft.world import dense, vocab

CORNERS = {"star": 10, "cross": 12, "pentagon": 5, "hexagon": 6}
"""The corners of the shapes the world can draw (visual_rft/world/scene.py `_polygon`: regular k-gons, the
star and the cross)."""
SWAPPED = ["star", "cross"]
"""The world's shapes that `use_shapes` replaces, in order (the few-shot classes use the other three)."""


def use_shapes(replacements: list[str]) -> None:
    """Replace star and cross (in that order) by the given shapes (names of CORNERS)."""
    old = SWAPPED[: len(replacements)]
    rename = dict(zip(old, replacements))
    shapes = {rename.get(k, k): CORNERS.get(rename.get(k, k), v) for k, v in vocab.SHAPES.items()}
    vocab.SHAPES.clear()
    vocab.SHAPES.update(shapes)
    fills = {rename.get(k, k): v for k, v in vocab.FILLS.items()}  # a new shape keeps its old one's fill
    vocab.FILLS.clear()
    vocab.FILLS.update(fills)
    for name in ("CLASSIFICATION_BASE", "DETECTION_ALL", "DETECTION_NOVEL", "DETECTION_BASE"):
        items = getattr(vocab, name)
        items[:] = [" ".join(rename.get(w, w) for w in label.split()) for label in items]
    dense.SHAPE_CLASSES = vision_tower.SHAPE_CLASSES = (*vocab.SHAPES, "digit")
    counts = sorted({k for k in vocab.SHAPES.values() if k})
    table = np.full(max(counts) + 1, -1)
    table[[0, *counts]] = range(len(counts) + 1)
    vision_tower.CORNER_COUNTS, vision_tower.CORNER_CLASS = counts, table
    vision_tower.TOKEN_HEADS["corner"] = len(counts) + 1


def add_shapes_option(parser: argparse.ArgumentParser) -> None:
    """A script's `--shapes star,cross` option."""
    parser.add_argument("--shapes", default="", help="replace star,cross, e.g. pentagon,hexagon")


def apply_shapes_option(args: argparse.Namespace) -> str:
    """Swap the shapes `--shapes` names (if any); returns the vocabulary in use, for the result JSON."""
    if args.shapes:
        use_shapes(args.shapes.split(","))
    return args.shapes or ",".join(SWAPPED)
