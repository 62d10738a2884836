"""Query planning: the file's queries, present categories, all categories, an existence map."""

from __future__ import annotations

import dataclasses
import json

import pytest

from visual_rft.data.types import DetectionTarget, Sample
from visual_rft.eval.completions import Completion
from visual_rft.eval.queries import detection_problem, plan_queries
from visual_rft.eval.scoring import score


def _det(samples):
    return [s for s in samples if s.task == "detection"]


def test_plan_queries_modes(samples, tmp_path):
    det = _det(samples)
    assert plan_queries(samples) == [(s, True) for s in samples]

    present = plan_queries(det, "present")
    assert [s.id for s, asked in present if not asked] == ["det-1-blue_circle", "det-3-blue_circle"]
    assert len(present) == len(det)

    drop_one = [s for s in det if s.id != "det-1-blue_circle"]  # image 1 no longer asks 'blue circle'
    plan = plan_queries(drop_one, "all")
    added = [s for s, _ in plan[len(drop_one) :]]
    assert all(asked for _, asked in plan)
    assert [s.id for s in added] == ["det-1-red_square::blue circle"]
    new = added[0]
    assert new.target == DetectionTarget((), "blue circle") and new.images == det[2].images
    assert new.problem == detection_problem("blue circle") and "'blue circle'" in new.problem
    assert new.meta["split"] == "novel" and (new.width, new.height) == (224, 112)  # image 1 of conftest.SIZES

    with pytest.raises(ValueError, match="existence map"):
        plan_queries(det, str(tmp_path / "missing.json"))

    existence = tmp_path / "exist.json"
    existence.write_text(json.dumps({"img0.png": ["blue circle"], "img2": ["red square", "blue circle"]}))
    plan = plan_queries(det, str(existence))
    asked = {s.id for s, a in plan if a}
    assert asked == {"det-0-blue_circle", "det-2-red_square", "det-2-blue_circle"}
    # what is not asked keeps its ground truth: its objects count as missed
    m = score([Completion(s, None, None, asked=False) if not a else Completion(s, "", None) for s, a in plan])
    assert m["n_gt"] == sum(len(s.target.boxes) for s in det) and m["n_asked"] == 3


def test_detection_problem_replaces_the_quoted_category():
    s = Sample("a", ["x.png"], "detection", 'Find every "cat" here.', DetectionTarget((), "cat"))
    assert detection_problem("dog", s) == 'Find every "dog" here.'
    s2 = Sample("b", ["x.png"], "detection", "Locate the category cat.", DetectionTarget((), "cat"))
    assert detection_problem("dog", s2) == "Detect all objects belonging to the category 'dog' in the image."


def test_conflicting_split_is_an_error(samples):
    det = _det(samples)[:2]
    bad = [det[0], Sample("z", det[1].images, "detection", "q", det[0].target, meta={"split": "novel"})]
    with pytest.raises(ValueError, match="both 'base' and 'novel'"):
        plan_queries(bad, "all")


def test_a_federated_file_gets_no_added_queries(samples):
    det = [s for s in _det(samples) if s.id != "det-1-blue_circle"]
    assert len(plan_queries(det, "all")) > len(det)  # 'all' adds image 1's missing 'blue circle'
    # LVIS: that (image, category) is not verified, so it cannot be asked
    federated = [dataclasses.replace(s, meta={**s.meta, "federated": True}) for s in det]
    assert plan_queries(federated, "all") == [(s, True) for s in federated]
