"""atomic_path and write_lines_atomic: a file or folder appears whole or not at all."""

import pytest

from visual_rft.data.files import atomic_path, write_lines_atomic


def _siblings(folder):
    return sorted(p.name for p in folder.iterdir())


def test_file_gets_the_new_content_and_no_tmp_is_left(tmp_path):
    target = tmp_path / "sub" / "data.txt"  # the parent folder is created
    with atomic_path(target) as tmp:
        assert tmp == tmp_path / "sub" / "data.txt.tmp"
        tmp.write_text("new")
        assert not target.exists()  # nothing at the final name until the block ends
    assert target.read_text() == "new"
    assert _siblings(tmp_path / "sub") == ["data.txt"]


def test_file_replaces_an_existing_file(tmp_path):
    target = tmp_path / "data.txt"
    target.write_text("old")
    with atomic_path(target) as tmp:
        tmp.write_text("new")
        assert target.read_text() == "old"
    assert target.read_text() == "new"
    assert _siblings(tmp_path) == ["data.txt"]


def test_error_in_block_leaves_the_old_file_and_removes_the_tmp(tmp_path):
    target = tmp_path / "data.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="crash"), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert _siblings(tmp_path) == ["data.txt"]


def test_error_in_block_with_no_old_file_leaves_nothing(tmp_path):
    target = tmp_path / "data.txt"
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise KeyboardInterrupt  # BaseException too: a Ctrl-C mid-write leaves no temporary
    assert _siblings(tmp_path) == []


def test_stale_tmp_from_an_earlier_crash_is_cleared_first(tmp_path):
    target = tmp_path / "ckpt"
    (tmp_path / "ckpt.tmp").mkdir()
    (tmp_path / "ckpt.tmp" / "stale.bin").write_text("x")
    with atomic_path(target) as tmp:
        assert not tmp.exists()
        tmp.mkdir()
        (tmp / "fresh.bin").write_text("y")
    assert _siblings(target) == ["fresh.bin"]
    assert _siblings(tmp_path) == ["ckpt"]


def test_folder_is_built_then_renamed(tmp_path):
    target = tmp_path / "checkpoint-3"
    with atomic_path(target) as tmp:
        assert tmp.name == "checkpoint-3.tmp"
        tmp.mkdir()
        (tmp / "a.txt").write_text("A")
        (tmp / "inner").mkdir()
        (tmp / "inner" / "b.txt").write_text("B")
        assert not target.exists()
    assert (target / "a.txt").read_text() == "A"
    assert (target / "inner" / "b.txt").read_text() == "B"
    assert _siblings(tmp_path) == ["checkpoint-3"]


def test_folder_replaces_an_existing_non_empty_folder(tmp_path):
    target = tmp_path / "checkpoint-3"
    target.mkdir()
    (target / "old.txt").write_text("old")
    (target / "deep").mkdir()
    (target / "deep" / "old2.txt").write_text("old")
    with atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "new.txt").write_text("new")
        assert (target / "old.txt").read_text() == "old"  # the old one stays until the new one is whole
    assert _siblings(target) == ["new.txt"]
    assert (target / "new.txt").read_text() == "new"
    assert _siblings(tmp_path) == ["checkpoint-3"]


def test_error_while_building_a_folder_keeps_the_old_folder(tmp_path):
    target = tmp_path / "checkpoint-3"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(OSError), atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "part.txt").write_text("part")
        raise OSError("disk full")
    assert _siblings(target) == ["old.txt"]
    assert (target / "old.txt").read_text() == "old"
    assert _siblings(tmp_path) == ["checkpoint-3"]


def test_write_lines_atomic_returns_the_count_and_writes_one_line_each(tmp_path):
    target = tmp_path / "out" / "lines.jsonl"
    n = write_lines_atomic(target, (f'{{"i": {i}}}' for i in range(3)))  # a generator is fine
    assert n == 3
    assert target.read_text() == '{"i": 0}\n{"i": 1}\n{"i": 2}\n'
    assert write_lines_atomic(target, []) == 0
    assert target.read_text() == ""
    assert _siblings(tmp_path / "out") == ["lines.jsonl"]


def test_write_lines_atomic_keeps_the_old_file_when_the_lines_fail(tmp_path):
    target = tmp_path / "lines.txt"
    target.write_text("old\n")

    def lines():
        yield "a"
        raise ValueError("bad record")

    with pytest.raises(ValueError, match="bad record"):
        write_lines_atomic(target, lines())
    assert target.read_text() == "old\n"
    assert _siblings(tmp_path) == ["lines.txt"]
