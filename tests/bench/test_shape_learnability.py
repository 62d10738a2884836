"""bench/shape_learnability.py: the tower and a CNN read one label of the scene's main object."""

import json

import pytest
import torch


def _reader_against_its_pooling(bench, tmp_path, pool: str, step: int):
    """(the reader's output, the first 5 features of each main object's pooled tokens), its head the identity."""
    scenes = bench.draw(step, 2)
    reader = bench.TowerReader(bench.write_tiny(tmp_path / "m", "qwen2_5_vl", "1m", seed=0), 5, pool=pool)
    with torch.no_grad():
        torch.nn.init.eye_(reader.head.weight[:, :5])
        reader.head.weight[:, 5:] = 0
        reader.head.bias.zero_()
        tokens = bench.tower_tokens(reader.model, reader.processor, [im for im, _ in scenes])  # [n, H]
        out = reader(scenes)  # [2, 5]
    cells = [bench.main_object(scene, 0) == 0 for _, scene in scenes]
    parts = tokens.split([len(c) for c in cells])  # each image's tokens
    reduce = (lambda t: t.mean(0)) if pool == "mean" else (lambda t: t.amax(0))
    expected = torch.stack([reduce(t[torch.from_numpy(c)])[:5] for t, c in zip(parts, cells)])  # [2, 5]
    return out, expected


def test_the_tower_reader_averages_the_main_objects_tokens_only(load_bench, tmp_path):
    out, expected = _reader_against_its_pooling(load_bench("shape_learnability"), tmp_path, "mean", step=0)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-4)


def test_the_max_reader_takes_each_features_maximum_over_the_main_object(load_bench, tmp_path):
    out, expected = _reader_against_its_pooling(load_bench("shape_learnability"), tmp_path, "max", step=1)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-4)


@pytest.mark.slow
def test_a_cnn_learns_colour_in_a_few_steps(load_bench, tmp_path):
    """Colour is one linear read-out of the pixels: 50 steps of 16 reach it (shape does not: RESULTS.md)."""
    bench = load_bench("shape_learnability")
    result = bench.run("cnn", "colour", steps=50, lr=1e-3, batch=16, out=tmp_path)
    assert result["accuracy_per_25_steps"][-1] >= 80
    assert json.loads((tmp_path / "cnn-colour.json").read_text()) == result


def test_mimetic_init_makes_attention_start_near_its_targets(load_bench, tmp_path):
    """W_v^T W_o^T is exactly 0.4 Z - 0.4 I (full rank over the heads); each head's W_q^T W_k is the best
    rank-k approximation of 0.7 Z + 0.7 I, so its diagonal is clearly positive."""
    bench = load_bench("shape_learnability")
    torch.manual_seed(0)
    reader = bench.TowerReader(bench.write_tiny(tmp_path / "m", "qwen2_5_vl", "1m", seed=0), 5, mimetic=True)
    for block in reader.tower.blocks:
        attn = block.attn.requires_grad_(False)
        d, k = attn.proj.weight.shape[0], attn.proj.weight.shape[0] // attn.num_heads
        w = attn.qkv.weight
        vo = w[2 * d :].T @ attn.proj.weight.T  # [d, d]
        assert abs(float(vo.diag().mean()) + 0.4) < 0.05
        assert float((vo - torch.diag(vo.diag())).abs().mean()) < 0.1
        for h in range(attn.num_heads):
            qk = w[h * k : (h + 1) * k].T @ w[d + h * k : d + (h + 1) * k]  # [d, d]
            assert float(qk.diag().mean()) > 0.15
        assert float(attn.qkv.bias.abs().max()) == 0.0


def test_a_smaller_window_changes_what_the_windowed_blocks_see(load_bench, tmp_path):
    """At 56 px, a 112-px image is 4 attention windows instead of 1, so its tokens change; the full-attention
    block and the weights are the same."""
    bench = load_bench("shape_learnability")
    folder = bench.write_tiny(tmp_path / "m", "qwen2_5_vl", "1m", seed=0)
    image = bench.draw(2, 1)[0][0]  # every world image is at least 112 px a side
    outs = []
    for window in (0, 56):
        reader = bench.TowerReader(folder, 5, window=window)
        with torch.no_grad():
            outs.append(bench.tower_tokens(reader.model, reader.processor, [image]))
    assert outs[0].shape == outs[1].shape
    assert (outs[0] - outs[1]).abs().max() > 1e-3


def test_a_7_px_patch_tower_still_gives_one_token_per_28_px_cell(load_bench, tmp_path):
    """--patch 7: 16 patches merged into each token, so the language model's tokens are those of patch 14."""
    bench = load_bench("shape_learnability")
    image = bench.draw(3, 1)[0][0]
    counts = {}
    for patch in (14, 7):
        folder = bench.write_tiny(tmp_path / f"p{patch}", "qwen2_5_vl", "1m", seed=0)
        folder = bench.with_patch(folder, patch) if patch == 7 else folder
        reader = bench.TowerReader(folder, 5)
        assert reader.model.config.vision_config.patch_size == patch
        with torch.no_grad():
            counts[patch] = bench.tower_tokens(reader.model, reader.processor, [image]).shape
    assert counts[7] == counts[14] == ((image.width // 28) * (image.height // 28), 96)


def test_fills_change_the_images_and_flat_draws_the_old_world(load_bench):
    bench = load_bench("shape_learnability")
    filled, flat = bench.draw(4, 4), bench.draw(4, 4, fills=False)
    assert [s.objects for _, s in filled] == [s.objects for _, s in flat]  # the same scenes
    shapes = [s.objects[0].shape for _, s in filled]
    assert set(shapes) - {"circle"}  # at least one patterned shape among them
    for (a, _), (b, _), shape in zip(filled, flat, shapes):
        assert (a.tobytes() == b.tobytes()) == (shape == "circle")  # a circle is solid: drawn the same


def test_digit_scenes_hold_one_big_digit_labelled_by_its_value(load_bench):
    bench = load_bench("shape_learnability")
    scenes = bench.draw(5, 16, digits=True)
    values = [bench.TARGETS["digit"](s.objects[0]) for _, s in scenes]
    assert all(s.objects[0].kind == "digit" and len(s.objects) == 1 for _, s in scenes)
    assert len(set(values)) > 3 and all(0 <= v < bench.CLASSES["digit"] for v in values)
    for _, s in scenes:  # big: at least 45% of the shorter side, as the classification scene's object
        assert max(s.objects[0].w, s.objects[0].h) >= 0.4 * min(s.width, s.height)
    filled = bench.draw(
        5, 16, digits=True, digit_fills=True
    )  # the same scenes, each digit in its value's pattern
    assert [s.objects for _, s in filled] == [s.objects for _, s in scenes]
    for (a, s), (b, _) in zip(filled, scenes):
        assert (a.tobytes() == b.tobytes()) == (s.objects[0].digit == 0)  # 0 is solid: drawn the same
