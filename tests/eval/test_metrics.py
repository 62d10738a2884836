"""Tests of visual_rft.eval.metrics: hand-worked values, and pycocotools itself as the reference."""

from __future__ import annotations

import contextlib
import io
import json
import time

import numpy as np
import pytest

from visual_rft.data.boxes import iou
from visual_rft.data.types import Box
from visual_rft.eval.metrics import (
    DetectionQuery,
    classification_metrics,
    detection_metrics,
    grounding_metrics,
    open_vocab_metrics,
)
from visual_rft.eval.queries import load_existence_map, queries_for_image

# --------------------------------------------------------------------------------------------------
# classification


def test_classification_metrics_by_hand():
    strict = [True, False, True, False, True]
    lenient = [True, True, True, False, True]
    labels = ["a", "a", "b", "b", "b"]
    parsed = [True, True, True, False, True]
    m = classification_metrics(strict, lenient, labels, parsed)
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["lenient_accuracy"] == pytest.approx(4 / 5)
    assert m["per_class"] == {"a": pytest.approx(1 / 2), "b": pytest.approx(2 / 3)}
    assert m["unparseable"] == pytest.approx(1 / 5)
    assert m["n"] == 5


def test_classification_metrics_empty_and_without_lenient():
    m = classification_metrics([], [], [], [])
    assert m == {
        "accuracy": None,
        "lenient_accuracy": None,
        "unparseable": None,
        "n": 0,
        "per_class": {},
    }
    assert classification_metrics([True], None, ["a"], [True])["lenient_accuracy"] is None


def test_classification_metrics_rejects_lists_of_different_lengths():
    with pytest.raises(ValueError, match="differ in length"):
        classification_metrics([True, False], [True, False], ["a"], [True, True])


# --------------------------------------------------------------------------------------------------
# grounding


def test_grounding_metrics_by_hand():
    gts = [(0, 0, 10, 10), (0, 0, 4, 4), (0, 0, 2, 5)]
    preds = [(5, 0, 15, 10), (0, 0, 4, 4), None]
    # sample 1: inter 5*10 = 50, union 100 + 100 - 50 = 150, IoU 1/3
    # sample 2: identical, inter = union = 16, IoU 1
    # sample 3: missing, IoU 0, inter 0, union = gt area 2*5 = 10
    # gIoU = (1/3 + 1 + 0) / 3 = 4/9; cIoU = (50 + 16 + 0) / (150 + 16 + 10) = 66/176 = 0.375
    m = grounding_metrics(preds, gts)
    assert m["giou"] == pytest.approx(4 / 9)
    assert m["ciou"] == pytest.approx(0.375)
    assert m["acc@0.5"] == pytest.approx(1 / 3)
    assert m["missing"] == pytest.approx(1 / 3)
    assert m["n"] == 3


def test_grounding_threshold_is_strictly_greater():
    # IoU exactly 0.5: (0,0,10,5) inside (0,0,10,10), 50 / 100
    m = grounding_metrics([(0, 0, 10, 5)], [(0, 0, 10, 10)])
    assert m["giou"] == pytest.approx(0.5)
    assert m["acc@0.5"] == 0.0
    assert grounding_metrics([(0, 0, 10, 5)], [(0, 0, 10, 10)], threshold=0.4)["acc@0.4"] == 1.0


def test_grounding_degenerate_boxes_and_box_objects():
    # a reversed prediction has no area: IoU 0, union = gt area 100
    m = grounding_metrics([(10, 10, 0, 0), Box(0, 0, 10, 10)], [Box(0, 0, 10, 10), (0, 0, 10, 10)])
    assert m["giou"] == pytest.approx(0.5)
    assert m["ciou"] == pytest.approx(100 / 200)
    assert iou((0, 0, 0, 0), (0, 0, 0, 0)) == 0.0
    assert iou((0, 0, 2, 2), (1, 1, 3, 3)) == pytest.approx(1 / 7)


def test_grounding_empty():
    assert grounding_metrics([], []) == {"giou": None, "ciou": None, "acc@0.5": None, "missing": None, "n": 0}


# --------------------------------------------------------------------------------------------------
# detection, by hand


def test_perfect_detection_gives_ap_one():
    queries = [
        DetectionQuery("img1", "cat", [(10, 10, 50, 60)], [(10, 10, 50, 60)], [0.9]),
        DetectionQuery(
            "img1", "dog", [(0, 0, 20, 20), (30, 30, 90, 80)], [(30, 30, 90, 80), (0, 0, 20, 20)], [0.8, 0.7]
        ),
        DetectionQuery("img2", "cat", [(5, 5, 25, 45)], [(5, 5, 25, 45)], [0.6]),
    ]
    m = detection_metrics(queries, {"img1": (100, 100), "img2": (64, 48)})
    assert (m["mAP"], m["AP50"], m["AP75"]) == (pytest.approx(1.0), pytest.approx(1.0), pytest.approx(1.0))
    assert m["per_category"] == {"cat": pytest.approx(1.0), "dog": pytest.approx(1.0)}
    assert (m["n_queries"], m["n_images"], m["n_gt"], m["n_pred"], m["n_categories"]) == (3, 2, 4, 4, 2)


def test_iou_between_thresholds():
    # gt (0,0,10,10), prediction (0,0,10,7.2): IoU 72/100 = 0.72, a match at thresholds
    # 0.50, 0.55, 0.60, 0.65, 0.70 and a miss at 0.75 ... 0.95: mAP = 5/10, AP50 = 1, AP75 = 0
    m = detection_metrics([("i", "c", [(0, 0, 10, 10)], [(0, 0, 10, 7.2)], [1.0])])
    assert m["mAP"] == pytest.approx(0.5)
    assert m["AP50"] == pytest.approx(1.0)
    assert m["AP75"] == pytest.approx(0.0)


def test_one_tp_and_one_fp_by_hand():
    gt = [(0, 0, 10, 10)]
    hit, miss = (0, 0, 10, 10), (50, 50, 60, 60)
    # TP at 0.9 then FP at 0.5: precision 1 at recall 1 already, the FP comes after -> AP50 = 1
    m = detection_metrics([("i", "c", gt, [hit, miss], [0.9, 0.5])])
    assert m["AP50"] == pytest.approx(1.0)
    # FP at 0.9 then TP at 0.5: recall reaches 1 with precision 1/2; the interpolated precision
    # (max precision at recall >= r) is 1/2 at all 101 recall points -> AP50 = 0.5
    m = detection_metrics([("i", "c", gt, [hit, miss], [0.5, 0.9])])
    assert m["AP50"] == pytest.approx(0.5)


def test_101_point_interpolation_with_a_missed_object():
    # two gt boxes; TP at 0.9, FP at 0.6, the second gt never found.
    # ranked: TP -> recall 1/2, precision 1; FP -> recall 1/2, precision 1/2. The 101 recall
    # thresholds 0.00, 0.01, ..., 0.50 (51 of them) get precision 1; 0.51 ... 1.00 (50) get 0.
    # AP50 = 51/101 (not 0.5, which a continuous area under the curve would give).
    gt = [(0, 0, 10, 10), (20, 20, 30, 30)]
    m = detection_metrics([("i", "c", gt, [(0, 0, 10, 10), (50, 50, 60, 60)], [0.9, 0.6])])
    assert m["AP50"] == pytest.approx(51 / 101)


def test_an_image_without_predictions_counts_its_objects_as_missed():
    # image a: found; image b: the model answered nothing -> recall 1/2 at precision 1 -> 51/101
    queries = [("a", "c", [(0, 0, 10, 10)], [(0, 0, 10, 10)], [0.8]), ("b", "c", [(0, 0, 10, 10)], [], [])]
    m = detection_metrics(queries)
    assert m["mAP"] == pytest.approx(51 / 101)
    assert m["n_pred"] == 1


def test_category_without_gt_is_excluded():
    queries = [
        ("i", "cat", [(0, 0, 10, 10)], [(0, 0, 10, 10)], [0.9]),
        ("i", "zebra", [], [(0, 0, 10, 10)], [0.9]),  # a false positive for a category absent everywhere
        ("j", "dog", [(0, 0, 10, 10)], [(50, 50, 60, 60)], [0.9]),  # dog: AP 0
    ]
    m = detection_metrics(queries)
    assert m["per_category"] == {"cat": pytest.approx(1.0), "dog": pytest.approx(0.0), "zebra": None}
    assert m["per_category_AP50"]["zebra"] is None
    assert m["mAP"] == pytest.approx(0.5)  # (1 + 0) / 2, zebra left out
    assert m["n_categories"] == 2
    only_cat = detection_metrics(queries, categories=["cat", "zebra", "unknown"])
    assert only_cat["mAP"] == pytest.approx(1.0)
    assert only_cat["n_categories"] == 1


def test_false_positives_on_absent_queries_lower_ap():
    # "all" query mode: asking for cat in image j (no cat there) and the model answering adds a FP
    tp = ("i", "cat", [(0, 0, 10, 10)], [(0, 0, 10, 10)], [0.5])
    fp = ("j", "cat", [], [(0, 0, 10, 10)], [0.9])
    assert detection_metrics([tp])["AP50"] == pytest.approx(1.0)
    assert detection_metrics([tp, fp])["AP50"] == pytest.approx(0.5)


def test_missing_scores_default_to_one_and_box_objects_work():
    q = DetectionQuery("i", "c", [Box(0, 0, 10, 10)], [Box(0, 0, 10, 10, "c")])
    assert detection_metrics([q])["mAP"] == pytest.approx(1.0)


def test_detection_edge_cases_never_crash():
    empty = detection_metrics([])
    assert empty["mAP"] is None and empty["per_category"] == {} and empty["n_queries"] == 0
    no_gt = detection_metrics([("i", "c", [], [(0, 0, 1, 1)], [0.3])])
    assert no_gt["mAP"] is None and no_gt["per_category"] == {"c": None}
    no_pred = detection_metrics([("i", "c", [(0, 0, 5, 5)], [], [])])
    assert no_pred["mAP"] == 0.0 and no_pred["AP50"] == 0.0
    nothing = detection_metrics([("i", "c", [], [], [])])
    assert nothing["mAP"] is None
    reversed_pred = detection_metrics([("i", "c", [(0, 0, 5, 5)], [(5, 5, 0, 0)], [0.9])])
    assert reversed_pred["mAP"] == 0.0


def test_detection_rejects_bad_queries():
    with pytest.raises(ValueError, match="two queries"):
        detection_metrics([("i", "c", [(0, 0, 1, 1)], [], []), ("i", "c", [(0, 0, 1, 1)], [], [])])
    with pytest.raises(ValueError, match="scores"):
        detection_metrics([("i", "c", [(0, 0, 1, 1)], [(0, 0, 1, 1)], [0.5, 0.4])])


def test_detection_prints_nothing(capsys):
    detection_metrics([("i", "c", [(0, 0, 10, 10)], [(0, 0, 10, 10)], [1.0])])
    assert capsys.readouterr().out == ""


def test_open_vocab_splits():
    queries = [
        ("i", "cat", [(0, 0, 10, 10)], [(0, 0, 10, 10)], [0.9]),  # base, AP 1
        ("i", "dog", [(0, 0, 10, 10)], [(0, 0, 10, 7.2)], [0.9]),  # base, AP 0.5
        ("j", "okapi", [(0, 0, 10, 10)], [], []),  # novel, AP 0
        ("j", "cat", [], [], []),
    ]
    m = open_vocab_metrics(queries, base=["cat", "dog"], novel=["okapi", "yeti"])  # yeti: never queried
    assert m["mAP_base"] == pytest.approx(0.75)
    assert m["mAP_novel"] == pytest.approx(0.0)
    assert m["mAP_all"] == pytest.approx(0.5)
    assert m["mAP"] == pytest.approx(0.5)
    assert m["AP50_base"] == pytest.approx(1.0)
    assert m["AP75_base"] == pytest.approx(0.5)
    assert detection_metrics(queries, splits={"pets": ["dog"]})["mAP_pets"] == pytest.approx(0.5)


def test_queries_for_image_modes(tmp_path):
    vocab = ["cat", "dog", "bird"]
    assert queries_for_image(["dog", "cat", "dog"], vocab) == ["cat", "dog"]
    assert queries_for_image(["dog"], vocab, "all") == vocab
    path = tmp_path / "exist.json"
    path.write_text(json.dumps({"7": ["bird", "unicorn"], "8": []}))
    existence = load_existence_map(path)
    assert existence == {"7": ["bird", "unicorn"], "8": []}
    assert queries_for_image(["dog"], vocab, "existence", existence[str(7)]) == ["bird"]
    assert queries_for_image(["dog"], vocab, "existence", existence.get("9", [])) == []
    with pytest.raises(ValueError):
        queries_for_image(["dog"], vocab, "existence")
    with pytest.raises(ValueError):
        queries_for_image(["dog"], vocab, "everything")
    path.write_text("[1, 2]")
    with pytest.raises(ValueError):
        load_existence_map(path)


# --------------------------------------------------------------------------------------------------
# detection against pycocotools called directly


def _random_queries(seed: int, n_images: int = 25, categories: tuple[str, ...] = ("a", "b", "c", "d", "e")):
    rng = np.random.default_rng(seed)
    queries = []
    for i in range(n_images):
        w, h = int(rng.integers(50, 400)), int(rng.integers(50, 400))
        for cat in categories:
            if cat == "e" or rng.random() < 0.3:  # "e" has no ground truth anywhere
                n_gt = 0
            else:
                n_gt = int(rng.integers(1, 4))
            gt = []
            for _ in range(n_gt):
                x1, y1 = rng.uniform(0, w * 0.7), rng.uniform(0, h * 0.7)
                gt.append((x1, y1, x1 + rng.uniform(3, w * 0.3), y1 + rng.uniform(3, h * 0.3)))
            preds = []
            for x1, y1, x2, y2 in gt:
                if rng.random() < 0.8:
                    j = rng.normal(0, 0.1, 4) * np.array([x2 - x1, y2 - y1, x2 - x1, y2 - y1])
                    preds.append(tuple(float(v) for v in np.array([x1, y1, x2, y2]) + j))
            for _ in range(int(rng.integers(0, 3))):
                x1, y1 = rng.uniform(0, w * 0.7), rng.uniform(0, h * 0.7)
                preds.append((x1, y1, x1 + rng.uniform(3, w * 0.3), y1 + rng.uniform(3, h * 0.3)))
            scores = rng.uniform(0, 1, len(preds)).tolist()
            queries.append((f"img{i}", cat, gt, preds, scores, (w, h)))
    return queries


def _reference_cocoeval(queries):
    """pycocotools used the documented way: a gt dataset dict, loadRes on a result list, evaluate/accumulate/summarize."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    img_ids = {name: 100 + k for k, name in enumerate(sorted({q[0] for q in queries}))}
    cat_ids = {name: 10 * (k + 1) for k, name in enumerate(sorted({q[1] for q in queries}))}
    images = {}
    annotations, results = [], []
    for image, cat, gt, preds, scores, (w, h) in queries:
        images[image] = {"id": img_ids[image], "width": w, "height": h, "file_name": f"{image}.jpg"}
        for x1, y1, x2, y2 in gt:
            annotations.append(
                {
                    "id": 1000 + len(annotations),
                    "image_id": img_ids[image],
                    "category_id": cat_ids[cat],
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": 0,
                }
            )
        for (x1, y1, x2, y2), s in zip(preds, scores):
            results.append(
                {
                    "image_id": img_ids[image],
                    "category_id": cat_ids[cat],
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "score": s,
                }
            )
    dataset = {
        "images": list(images.values()),
        "annotations": annotations,
        "categories": [{"id": i, "name": n} for n, i in cat_ids.items()],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = dataset
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(results)
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    precision = ev.eval["precision"][:, :, :, 0, -1]  # area all, maxDets 100
    at_one_det = ev.eval["precision"][:, :, :, 0, 0]  # area all, maxDets 1
    per_cat = {}
    for k, cat_id in enumerate(ev.params.catIds):
        name = next(n for n, i in cat_ids.items() if i == cat_id)
        p = precision[:, :, k]
        per_cat[name] = float(p[p > -1].mean()) if (p > -1).any() else None
    return ev.stats, per_cat, float(at_one_det[at_one_det > -1].mean())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_pycocotools_directly(seed):
    queries = _random_queries(seed)
    stats, per_cat, _ = _reference_cocoeval(queries)
    sizes = {q[0]: q[5] for q in queries}
    m = detection_metrics([q[:5] for q in queries], sizes)
    assert m["mAP"] == pytest.approx(stats[0], abs=1e-12)
    assert m["AP50"] == pytest.approx(stats[1], abs=1e-12)
    assert m["AP75"] == pytest.approx(stats[2], abs=1e-12)
    assert set(m["per_category"]) == set(per_cat)
    for cat, ap in per_cat.items():
        assert m["per_category"][cat] == (None if ap is None else pytest.approx(ap, abs=1e-12))
    assert per_cat["e"] is None
    assert 0.2 < m["mAP"] < 0.9  # a non-trivial case: neither all right nor all wrong


def test_matches_pycocotools_with_max_dets_one():
    # COCO's "maxDets=1" AP (computed but not printed by summarize): only each query's top-scoring box counts
    queries = _random_queries(5, n_images=10)
    stats, _, ap_at_one_det = _reference_cocoeval(queries)
    m = detection_metrics([q[:5] for q in queries], max_dets=1)
    assert m["mAP"] == pytest.approx(ap_at_one_det, abs=1e-12)
    assert m["mAP"] < stats[0]


def test_detection_speed_5000_queries():
    rng = np.random.default_rng(0)
    vocab = [f"cat{k}" for k in range(80)]
    queries = []
    for i in range(1000):
        for cat in rng.choice(vocab, size=5, replace=False):
            gt = [(10.0 * j, 10.0 * j, 10.0 * j + 30, 10.0 * j + 40) for j in range(int(rng.integers(0, 4)))]
            preds = [(x1 + rng.normal(0, 3), y1, x2, y2) for x1, y1, x2, y2 in gt] + [(0, 0, 5, 5)]
            queries.append((i, str(cat), gt, preds, rng.uniform(0, 1, len(preds)).tolist()))
    start = time.perf_counter()
    m = detection_metrics(queries)
    seconds = time.perf_counter() - start
    print(f"detection_metrics over {len(queries)} queries: {seconds:.2f} s")
    assert m["n_queries"] == 5000 and m["mAP"] is not None
    assert seconds < 4.0  # about 0.5 s on a laptop-class core; generous for loaded CI machines


def test_lvis_not_exhaustive_query_ignores_unmatched_boxes():
    """A higher-scored box off the object is a false positive (precision 1/2 at recall 1: AP 0.5 at every IoU
    threshold), unless LVIS marked the (image, category) not exhaustive, where it is ignored (AP 1)."""
    gt, miss = (10, 10, 50, 50), (100, 100, 140, 140)
    for flag, expected in ((False, 0.5), (True, 1.0)):
        m = detection_metrics([DetectionQuery("img", "die", [gt], [miss, gt], [0.95, 0.9], flag)])
        assert (m["mAP"], m["AP50"]) == (pytest.approx(expected), pytest.approx(expected))
