"""bench/locate_fresh.py: fresh grounding scenes in the default locate set's proportions."""

import sys

import pytest


def test_fresh_scenes_keep_the_kinds_proportions_and_are_all_distinct(load_bench, tmp_path):
    bench = load_bench("locate_fresh")
    samples = bench.fresh_samples(tmp_path, ["single", "name"], 30, seed=7, weights={"single": 2, "name": 1})
    kinds = [s.meta["kind"] for s in samples]
    assert kinds.count("single") == 20 and kinds.count("name") == 10
    assert len({s.id for s in samples}) == 30
    assert len({s.images[0] for s in samples}) == 30  # each scene its own image
    assert all(len(s.meta["objects"]) == 1 for s in samples if s.meta["kind"] == "single")
    assert all(len(s.meta["objects"]) >= 3 for s in samples if s.meta["kind"] == "name")


@pytest.mark.parametrize("seed", ["0", "23"])
def test_the_training_and_held_out_worlds_seeds_are_refused(load_bench, tmp_path, monkeypatch, capsys, seed):
    bench = load_bench("locate_fresh")
    argv = ["locate_fresh.py", "--run", str(tmp_path), "--out", str(tmp_path / "o"), "--seed", seed]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit):
        bench.main()
    assert "--seed 0 is the default's training world" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_a_run_without_a_stage_1_model_is_refused_before_any_scene_is_drawn(
    load_bench, tmp_path, monkeypatch, capsys
):
    bench = load_bench("locate_fresh")
    monkeypatch.setattr(
        sys, "argv", ["locate_fresh.py", "--run", str(tmp_path), "--out", str(tmp_path / "o")]
    )
    with pytest.raises(SystemExit):
        bench.main()
    assert "no stage-1 model" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
