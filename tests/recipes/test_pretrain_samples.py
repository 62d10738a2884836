"""recipes/pretrain_samples.py: what each pre-training stage trains on, the derived questions included."""

from visual_rft.data.jsonl import read_samples
from visual_rft.recipes.pretrain import PretrainConfig
from visual_rft.recipes.pretrain_samples import (
    DERIVED_KINDS,
    GROUNDED_DETECTION,
    PRESENCE,
    PRETRAIN_FILES,
    SAMPLE_KINDS,
    category_of,
    grounded_detection,
    locate_samples,
    mix_samples,
    presence_pairs,
    stage_parts,
)
from visual_rft.world import DETECTION_BASE, build, build_suite


def test_the_locate_stage_takes_the_kinds_it_is_given_detection_and_classification_included(tmp_path):
    paths = build_suite(tmp_path, seed=0, n_pretrain=12, n_test=0, shots=(1,))
    files = ("grd_single_train", "grd_base_train", "det_base_train", "cls_base_train")
    parts = {k: read_samples(paths[k]) for k in files}
    grounding = parts["grd_base_train"]
    detection = [s.id for s in parts["det_base_train"]]
    names = [s.id for s in grounding if s.meta["kind"] == "name"]
    assert names and detection
    located = locate_samples(parts, ["name"])
    assert [s.id for s in located] == names
    located = locate_samples(parts, ["single", "name", "detection"])
    assert {s.meta.get("kind") for s in located[: -len(detection)]} == {"single", "name"}
    assert [s.id for s in located[-len(detection) :]] == detection
    assert locate_samples(parts, ["detection"])[0].task == "detection"
    located = locate_samples(parts, ["single", "classification"])
    assert {s.task for s in located} == {"grounding", "classification"}
    assert [s.id for s in located if s.task == "classification"] == [s.id for s in parts["cls_base_train"]]
    quarter = locate_samples(parts, ["single", "classification"], classification=0.25)
    classes = [s.id for s in parts["cls_base_train"]]
    assert [s.id for s in quarter if s.task == "classification"] == classes[: round(len(classes) / 4)]
    assert [s.id for s in quarter if s.task == "grounding"] == [
        s.id for s in located if s.task == "grounding"
    ]


def test_align_and_joint_take_every_sample_by_default_and_only_the_mix_kinds_when_told(tmp_path):
    paths = build_suite(tmp_path, seed=0, n_pretrain=12, n_test=0, shots=(1,))
    parts = {k: read_samples(paths[k]) for k in PRETRAIN_FILES}
    every = [s.id for k in PRETRAIN_FILES for s in parts[k]]
    # file by file, as before the field
    assert [s.id for s in mix_samples(parts, list(SAMPLE_KINDS))] == every
    no_detection = mix_samples(parts, ["classification", "name", "extreme", "single"])
    detection = {s.id for s in parts["det_base_train"]}
    assert [s.id for s in no_detection] == [i for i in every if i not in detection]
    only_extreme = mix_samples(parts, ["extreme"])
    assert only_extreme and {(s.task, s.meta["kind"]) for s in only_extreme} == {("grounding", "extreme")}


def test_the_named_scenes_ask_detection_of_their_object_or_of_a_category_none_of_theirs_has(tmp_path):
    paths = build_suite(tmp_path, seed=0, n_pretrain=40, n_test=0, shots=(1,))
    singles, grounding = read_samples(paths["grd_single_train"]), read_samples(paths["grd_base_train"])
    named = singles + [s for s in grounding if s.meta["kind"] == "name"]
    assert len(named) < len(singles + grounding)  # `extreme` asks no name: skipped
    asked = grounded_detection(singles + grounding, DETECTION_BASE, seed=0)
    by_id = {f"{s.id}-detection": s for s in named}
    ids = {s.id for s in asked}
    in_scene_order = [i for i in by_id if i in ids]
    assert ids <= set(by_id) and in_scene_order == [s.id for s in asked]
    for kind in ("detection_single", "detection_name"):  # No Objects at most half of each kind's answers
        answers = [bool(s.target.boxes) for s in asked if s.meta["kind"] == kind]
        assert answers and answers.count(False) <= answers.count(True)
    # every named object of a base category is asked for; the absent questions dropped are the last ones
    base_named = [s for s in named if s.meta["query"]["name"] in DETECTION_BASE]
    assert {f"{s.id}-detection" for s in base_named} <= {s.id for s in asked}
    uncapped = grounded_detection(singles + grounding, DETECTION_BASE, seed=0, balance=False)
    for kind in ("detection_single", "detection_name"):
        kept = [s.id for s in asked if s.meta["kind"] == kind and not s.target.boxes]
        every = [s.id for s in uncapped if s.meta["kind"] == kind and not s.target.boxes]
        assert kept == every[: len(kept)]
    present = 0
    for det in asked:
        one = by_id[det.id]
        name, category = one.meta["query"]["name"], det.target.category
        assert det.task == "detection" and det.images == one.images
        assert det.meta["kind"] == f"detection_{one.meta['kind']}"
        assert det.problem == f"Detect all objects belonging to the category '{category}' in the image."
        assert category in DETECTION_BASE
        shown = {category_of(o) for o in one.meta["objects"]}
        assert name in shown
        if name in DETECTION_BASE:  # its own object, its one box
            assert category == name and [b.xyxy for b in det.target.boxes] == [one.target.box.xyxy]
            present += 1
        else:  # a base category no object of the scene has: No Objects
            assert category not in shown and det.target.boxes == ()
    assert 0 < present < len(asked)  # both answers are taught
    assert {s.meta["kind"] for s in asked} == {"detection_single", "detection_name"}
    assert [s.id for s in grounded_detection(named, DETECTION_BASE, seed=0)] == [s.id for s in asked]
    every = grounded_detection(named, DETECTION_BASE, seed=0, balance=False)  # a held-out set: every scene
    assert [s.id for s in every] == list(by_id) and len(every) > len(asked)
    parts = {"grd_single_train": singles, "grd_base_train": [], "det_base_train": [], "cls_base_train": []}
    parts["det_grounded_train"] = asked
    located = locate_samples(parts, ["single", "detection_single"])
    assert [s.id for s in located] == [s.id for s in singles] + [
        s.id for s in asked if s.meta["kind"] == "detection_single"
    ]
    assert mix_samples(parts, ["detection_name"]) == [s for s in asked if s.meta["kind"] == "detection_name"]
    assert not set(GROUNDED_DETECTION) & set(PretrainConfig().mix_kinds)  # align, joint: build_suite's files


def test_each_scene_is_asked_once_for_a_category_it_shows_and_once_for_one_it_does_not(tmp_path):
    scenes = read_samples(build("grounding", tmp_path / "w", 30, seed=3, categories=["name"], name="name"))
    pairs = presence_pairs(scenes, DETECTION_BASE, seed=0)
    with_base = [s for s in scenes if {category_of(o) for o in s.meta["objects"]} & set(DETECTION_BASE)]
    assert len(pairs) == len(with_base) > 10  # the scenes that show no base category are skipped
    for (present, absent), scene in zip(pairs, with_base):
        assert present.images == absent.images == scene.images and present.task == absent.task == "detection"
        shown = {category_of(o) for o in scene.meta["objects"]}
        asked = present.target.category
        assert asked in shown and asked in DETECTION_BASE and asked in present.problem
        instances = [o["box"] for o in scene.meta["objects"] if category_of(o) == asked]
        assert sorted(b.xyxy for b in present.target.boxes) == sorted(tuple(map(float, b)) for b in instances)
        ys = [(b.y1, b.x1) for b in present.target.boxes]
        assert ys == sorted(ys)  # in reading order, as the world's detection queries
        assert absent.target.category not in shown and absent.target.category in DETECTION_BASE
        assert absent.target.boxes == () and absent.target.category in absent.problem
        assert [category_of(scene.meta["objects"][i]) for i in present.meta["instances"]] == [asked] * len(
            instances
        )
        assert absent.meta["instances"] == [] and present.meta["kind"] == absent.meta["kind"] == PRESENCE
    assert presence_pairs(scenes, DETECTION_BASE, seed=0) == pairs  # the draw is the seed's
    assert presence_pairs(scenes, DETECTION_BASE, seed=1) != pairs
    # each category asked present in some scenes and absent in others, so the question alone does not tell
    present = {p.target.category for p, _ in pairs}
    absent = {a.target.category for _, a in pairs}
    assert len(present & absent) >= 3


def test_the_stages_parts_hold_the_files_then_the_derived_questions_and_presence_only_when_asked(tmp_path):
    paths = build_suite(tmp_path, seed=0, n_pretrain=24, n_test=0, shots=(1,))
    parts = stage_parts(paths, seed=0)
    assert list(parts) == [*PRETRAIN_FILES, "det_grounded_train", "presence_train"]
    scenes = parts["grd_base_train"]
    pairs = presence_pairs(scenes, DETECTION_BASE, 0)
    assert [s.id for s in parts["presence_train"]] == [s.id for pair in pairs for s in pair] and pairs
    assert {s.meta["kind"] for s in parts["det_grounded_train"]} <= set(GROUNDED_DETECTION)
    # the locate stage takes the presence questions when asked, after the grounding samples
    located = locate_samples(parts, ["name", PRESENCE])
    names = [s.id for s in scenes if s.meta["kind"] == "name"]
    assert [s.id for s in located] == names + [s.id for s in parts["presence_train"]]
    assert not any(s.meta.get("kind") == PRESENCE for s in locate_samples(parts, ["name", "detection"]))
    # align and joint: the files' samples by default, none of the derived questions
    every = [s.id for k in PRETRAIN_FILES for s in parts[k]]
    assert [s.id for s in mix_samples(parts, PretrainConfig().mix_kinds)] == every
    assert set(DERIVED_KINDS) <= set(SAMPLE_KINDS) and not set(DERIVED_KINDS) & set(
        PretrainConfig().mix_kinds
    )
    assert [s.id for s in mix_samples(parts, [PRESENCE])] == [s.id for s in parts["presence_train"]]
