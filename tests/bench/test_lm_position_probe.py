"""bench/lm_position_probe.py: what the language model's residual stream holds of each token's position."""

import numpy as np

from visual_rft.data.jsonl import read_samples
from visual_rft.models.loading import coord_convention, load_model, load_processor, model_family
from visual_rft.world import build


def test_residuals_line_up_the_tokens_with_their_cells_and_objects(load_bench, tiny_model_dir, tmp_path):
    bench = load_bench("lm_position_probe")
    path = build("grounding", tmp_path / "w", 3, seed=4, categories=["name"], name="name")
    model, processor = load_model(tiny_model_dir, device="cpu", dtype="fp32"), load_processor(tiny_model_dir)
    layers = model.config.text_config.num_hidden_layers
    for s in read_samples(path):
        r = bench.residuals(model, processor, s, coord_convention(model_family(model.config)))
        n = (s.width // 28) * (s.height // 28)  # world images need no resize: one token per 28-px cell
        assert r["image"].shape == (layers + 1, n, model.config.text_config.hidden_size)
        assert r["answer"].shape == (layers + 1, model.config.text_config.hidden_size)
        assert r["cell"][:, 0].max() == s.width // 28 - 1 and r["cell"][:, 1].max() == s.height // 28 - 1
        np.testing.assert_array_equal(r["box"], s.target.box.xyxy)
        on = ~np.isnan(r["owner_box"][:, 0])
        assert 0 < on.sum() < n  # objects own some cells, background the rest
        assert any((r["owner_box"][on] == r["box"]).all(1))  # the asked object owns a cell
        assert {tuple(b) for b in r["owner_box"][on]} <= {tuple(o["box"]) for o in s.meta["objects"]}


def test_ridge_error_reads_a_linear_target_and_not_noise(load_bench):
    bench = load_bench("lm_position_probe")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 12))
    train = np.arange(300) < 200
    probe, constant = bench.ridge_error(x, x[:, :2] * 10, train)
    assert probe < 0.5 < 5 < constant
    probe, constant = bench.ridge_error(x, rng.normal(size=(300, 2)) * 10, train)
    assert probe > 0.9 * constant
