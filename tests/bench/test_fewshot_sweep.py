"""bench/fewshot_sweep.py: the grid is the product of every key's values; bad keys fail before any run."""

import pytest


def test_the_grid_is_the_product_of_every_keys_values(load_bench):
    sweep = load_bench("fewshot_sweep")
    points = sweep.grid_points(["sft.optim.lr=1e-4, 2e-4", "sft.run.steps=60,150,300"])
    assert len(points) == 6
    assert points[0] == {"sft.optim.lr": "1e-4", "sft.run.steps": "60"}
    assert points[-1] == {"sft.optim.lr": "2e-4", "sft.run.steps": "300"}
    assert sweep.grid_points([]) == [{}]


@pytest.mark.parametrize(
    "grid, message",
    [
        (["rft.optim.lr=1e-4"], "sets sft.* keys only"),
        (["sft.optim.lrr=1e-4"], "lrr"),
        (["sft.optim.lr"], "key=value"),
    ],
)
def test_a_bad_key_fails_before_any_run(load_bench, tmp_path, grid, message, capsys):
    sweep = load_bench("fewshot_sweep")
    args = ["--method", "sft", "--out", str(tmp_path)] + [a for g in grid for a in ("--grid", g)]
    with pytest.raises(BaseException) as e:
        sweep.main(args)
    assert message in str(e.value)
    assert not any(tmp_path.iterdir())  # nothing built, nothing trained
