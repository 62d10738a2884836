"""bench/localisation_probe.py's worlds and cues: a background that carries its pixel coordinates, the box in
the question, each image token's cell (the oracle), one-object scenes; and position_probe's cell labels."""

import json

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import (
    Qwen2_5_VisionTransformerPretrainedModel as Tower,
)

from visual_rft import world as W
from visual_rft.data.jsonl import read_samples
from visual_rft.recipes.vision_tower import tower_tokens


def test_gradient_background_encodes_position_and_keeps_objects(load_bench):
    probe = load_bench("localisation_probe")
    rng = np.random.default_rng(0)
    objects = [W.make_object(rng, W.WorldConfig(), "square", "red")]
    scene = W.layout_scene(rng, W.WorldConfig(), objects, size=(224, 168))
    plain = np.asarray(W.draw(scene)).astype(int)  # [H, W, 3]
    tinted = np.asarray(probe.gradient_draw(W.draw)(scene)).astype(int)  # [H, W, 3]
    o = scene.objects[0]
    mask = np.zeros(plain.shape[:2], bool)
    mask[o.y : o.y + o.h, o.x : o.x + o.w] = W.mask_of(o)
    assert (tinted[mask] == plain[mask]).all()  # the object keeps its colour
    background = ~mask & (plain == np.array(scene.background)).all(-1)
    ys, xs = np.nonzero(background)

    def expected(channel, coord):  # the channel plus (coordinate - 112) // 4, clipped to 0..255
        before = plain[ys, xs, channel]
        return np.clip(before + (coord - 112) // 4, 0, 255)

    assert (tinted[ys, xs, 0] == expected(0, xs)).all()  # red carries x
    assert (tinted[ys, xs, 2] == expected(2, ys)).all()  # blue carries y
    assert (tinted[ys, xs, 1] == plain[ys, xs, 1]).all()
    assert len(set(tinted[ys, xs, 0] - plain[ys, xs, 0])) > 20  # it really varies across the image


def test_hint_writes_the_answer_box_into_the_question(load_bench):
    probe = load_bench("localisation_probe")
    row = {"problem": "Find the red star in the image.", "target": {"box": [143, 66, 167, 101]}, "id": "g-1"}
    hinted = probe.with_hint(row)
    assert hinted["problem"] == "Find the red star in the image. It is at 143 66 167 101."
    assert hinted["target"] == row["target"] and row["problem"] == "Find the red star in the image."


def test_position_probe_labels_every_token_with_its_own_cell(load_bench, tiny_model_dir):
    probe = load_bench("position_probe")
    x, col, row, on, image = probe.token_cells(str(tiny_model_dir), n_images=3, seed=0)
    assert len(x) == len(col) == len(row) == len(on) == len(image) and set(image.tolist()) == {0, 1, 2}
    first = image == 0
    cols = col[first].max() + 1
    assert (col[first] == np.arange(first.sum()) % cols).all()  # raster order, column fastest
    assert (row[first] == np.arange(first.sum()) // cols).all()
    assert on.any() and not on.all()


def test_cell_oracle_adds_each_tokens_own_cell(load_bench, tiny_model_dir, monkeypatch):
    probe = load_bench("localisation_probe")
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir).eval()
    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    images = [Image.new("RGB", (168, 112), "gray"), Image.new("RGB", (56, 84), "red")]
    plain = tower_tokens(model, processor, images)  # [24 + 6, H]
    monkeypatch.setattr(Tower, "forward", Tower.forward)  # restored after the test
    probe.add_cell_oracle()
    coded = tower_tokens(model, processor, images)  # [30, H]
    code = (coded - plain) / 5  # [30, H]
    assert torch.allclose(code[:, 32:], torch.zeros(()), atol=1e-5)  # only the first 32 channels change
    cols = torch.cat([torch.arange(24) % 6, torch.arange(6) % 2])  # 6 x 4 cells, then 2 x 3
    rows = torch.cat([torch.arange(24) // 6, torch.arange(6) // 2])
    assert torch.allclose(code[:, :16], F.one_hot(cols, 16).float(), atol=1e-4)
    assert torch.allclose(code[:, 16:32], F.one_hot(rows, 16).float(), atol=1e-4)


def test_one_object_world_is_the_single_kind(load_bench, tmp_path):
    probe = load_bench("localisation_probe")
    out = probe.build_world(tmp_path, "grounding", 6, 2, gradient=False, one_object=True)
    rows = [json.loads(line) for line in (out / "grd_base_train.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and len(read_samples(out / "grd_base_test.jsonl")) == 2
    assert all(r["meta"]["kind"] == "single" and len(r["meta"]["objects"]) == 1 for r in rows)
