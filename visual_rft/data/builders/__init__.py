"""Dataset builders for the paper's experiments on real data: `vrft data build KIND ...`.

Each reads files the user already has (nothing is downloaded) and writes our JSONL (boxes in pixels),
nested k-shot training files, the test queries and OUT/build.json (what was skipped and why):
`coco` (coco-fewshot, coco-ovd), `lvis` (lvis-fewshot, lvis-ovd), `classification` (CoOp split files,
ImageFolder trees), `lisa` (ReasonSeg). The command line is `visual_rft.data.builders.cli`.
"""

from visual_rft.data.builders.classification import build_classification
from visual_rft.data.builders.coco import build_coco_fewshot, build_coco_ovd
from visual_rft.data.builders.common import BuildReport
from visual_rft.data.builders.lisa import build_lisa
from visual_rft.data.builders.lvis import build_lvis_fewshot, build_lvis_ovd

__all__ = [
    "BuildReport",
    "build_classification",
    "build_coco_fewshot",
    "build_coco_ovd",
    "build_lisa",
    "build_lvis_fewshot",
    "build_lvis_ovd",
]
