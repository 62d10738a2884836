"""`vrft world bench` in miniature: real runs (random 1M base, tiny budgets), the tables, and resuming."""

import json

import pytest

from visual_rft.config import load_config
from visual_rft.recipes.bench import TABLES, BenchConfig, cells, hand_written, mean_std, run_bench
from visual_rft.recipes.fewshot import metric


def test_mean_std_is_percent_mean_and_sample_std():
    assert mean_std([0.1, 0.2, 0.3]) == "20.0 ± 10.0"
    assert mean_std([0.5]) == "50.0"
    assert mean_std([]) == "-"


def test_every_table_column_reads_its_metric():
    metrics = {
        "classification": {"accuracy": 0.5},
        "detection": {
            "mAP": 0.1,
            "AP50": 0.2,
            "AP75": 0.3,
            "mAP_novel": 0.4,
            "mAP_base": None,
            "mAP_all": 0.6,
        },
        "grounding": {"giou": 0.7, "ciou": 0.8, "acc@0.5": 0.9},
    }
    for _, columns in TABLES.values():
        for _, dotted in columns:
            assert 0.0 <= metric(metrics, dotted) < 1.0  # None (no base categories) reads as 0
    assert metric(metrics, "grounding.acc@0.5") == 0.9
    assert metric({"acc@0.5": 0.25}, "grounding.acc@0.5") == 0.25  # a one-task evaluation


def test_hand_written_notes_are_found_anywhere_and_only_under_their_heading(tmp_path):
    path = tmp_path / "RESULTS.md"
    assert hand_written(path) == ""  # no file yet
    path.write_text("## What was tried\n\nNotes written first.\n")
    assert hand_written(path) == "## What was tried\n\nNotes written first.\n"
    path.write_text("# Results\n\n| table |\n\n## What was tried\n\nNotes.\n")
    assert hand_written(path) == "## What was tried\n\nNotes.\n"
    path.write_text("# Results\n\nNo notes; a line that mentions ## What was tried inline.\n")
    assert hand_written(path) == ""


def test_cells_follow_the_tables_and_reject_unknown_tasks():
    cfg = BenchConfig(tasks=["detection", "grounding", "open_vocabulary"], shots=[1, 4])
    assert cells(cfg) == [("detection", 1), ("detection", 4), ("grounding", 16), ("open_vocabulary", 4)]
    with pytest.raises(ValueError, match="unknown task 'segmentation'"):
        cells(BenchConfig(tasks=["segmentation"]))


@pytest.mark.parametrize(
    "override, message",
    [
        ("tasks=[segmentation]", "unknown task 'segmentation'"),
        (
            "fewshot.rft.grpo.aggregation=mean",
            r"fewshot: rft: grpo.aggregation must be token, sequence or constant",
        ),
        ("fewshot.sft.sft.aggregation=mean", r"fewshot: sft: sft.aggregation must be token or sequence"),
        ("shots=[1, 3]", r"fewshot: shots: the world has k-shot files for k in \[1, 2, 4, 8, 16\], not 3"),
        ("grounding_shots=5", r"not 5"),
        ("fewshot.eval.batch_size=0", r"fewshot: eval: batch_size must be >= 1"),
    ],
)
def test_bad_tasks_and_methods_are_refused_before_the_world_or_the_base_evaluation(
    tmp_path, override, message
):
    cfg = load_config(BenchConfig, None, [override, f"out_dir={tmp_path / 'bench'}"])
    with pytest.raises(ValueError, match=message):
        run_bench(cfg)
    assert not (tmp_path / "bench").exists()


@pytest.mark.slow
def test_bench_miniature_writes_tables_and_resumes(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "bench"
    cfg = load_config(
        BenchConfig,
        None,
        [
            f"out_dir={out}",
            "tasks=[classification, open_vocabulary]",
            "shots=[1]",
            "ovd_shots=1",
            "seeds=[0, 1]",
            f"fewshot.base_model={tiny_model_dir}",
            "fewshot.sft.run.steps=1",
            "fewshot.sft.sft.batch_size=2",
            "fewshot.rft.run.steps=1",
            "fewshot.rft.grpo.group_size=2",
            "fewshot.rft.grpo.max_completion_length=6",
            "fewshot.eval.max_new_tokens=6",
            "fewshot.eval.limit=4",
        ],
    )
    results = run_bench(cfg, command="vrft world bench (test)")
    text = results.read_text()
    assert results == out / "RESULTS.md" and "Written by `vrft world bench (test)`." in text
    assert (
        "## Table 2: few-shot fine-grained classification" in text and "## Table 7: open-vocabulary" in text
    )
    assert "| model | shots | n | mAP novel | mAP base | mAP all |" in text
    rows = [line for line in text.splitlines() if line.startswith(("| SFT", "| Visual-RFT", "| Δ"))]
    assert len(rows) == 6 and all("| 2 |" in r for r in rows)  # 2 tables x (SFT, RFT, delta), 2 seeds each
    # base evaluated once per task, not once per run
    assert (out / "classification" / "base" / "metrics.json").exists()
    assert not (out / "classification" / "1shot" / "seed0" / "eval" / "base").exists()
    ran = json.loads((out / "open_vocabulary" / "1shot" / "seed1" / "results.json").read_text())
    assert ran["budget"]["examples"] == 15 and ran["config"]["seed"] == 1  # 1 shot x 15 base categories
    assert set(ran["metrics"]) == {"sft", "rft"}
    logged = json.loads((out / "classification" / "1shot" / "seed0" / "rft" / "metrics.jsonl").read_text())
    assert {k for k in logged if k.endswith("/mean")} == {"reward/cls/mean", "reward/format/mean"}  # paper's
    printed = capsys.readouterr().out
    assert printed.count("] ") == 4

    stamp = (out / "classification" / "1shot" / "seed0" / "results.json").stat().st_mtime_ns
    results.write_text(text + "\n## What was tried\n\nA hand-written analysis.\n")
    run_bench(cfg, command="again")
    assert (out / "classification" / "1shot" / "seed0" / "results.json").stat().st_mtime_ns == stamp
    assert capsys.readouterr().out == ""  # nothing left to run
    again = results.read_text()
    assert "Written by `again`." in again and "Written by `vrft world bench (test)`" not in again
    assert again.endswith("\n## What was tried\n\nA hand-written analysis.\n")  # the notes survive


def test_a_world_folder_without_a_cells_files_is_refused_before_the_base_evaluation(tmp_path):
    world = tmp_path / "bench" / "world"  # from before world.json kept its settings: ensure_world takes it
    world.mkdir(parents=True)
    (world / "world.json").write_text(json.dumps({"files": {}}))
    cfg = load_config(
        BenchConfig, None, ["tasks=[classification]", "shots=[1]", f"out_dir={tmp_path / 'bench'}"]
    )
    with pytest.raises(
        FileNotFoundError, match=r"cls_fewshot_1shot.jsonl: the world folder has no such file"
    ):
        run_bench(cfg)
    assert sorted(p.name for p in (tmp_path / "bench").iterdir()) == ["world"]  # no base evaluated
