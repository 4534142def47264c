"""No command deletes or replaces what it did not write; outputs follow the user's umask."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from conftest import assert_one_line_error
from edgecnn.errors import UsageError
from edgecnn.fsutil import MANIFEST, atomic_dir, atomic_output, write_atomic

TRAIN = ("train", "--task", "classify", "--data", "digits", "--arch", "dsnet_test",
         "--epochs", "1", "--batch", "32", "--max-train", "64", "--imgsz", "12", "-q")


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    from edgecnn.train.classify import train_classifier
    from edgecnn.train.config import TrainConfig

    out = tmp_path_factory.mktemp("src") / "run"
    train_classifier(TrainConfig(task="classify", data="digits", arch="dsnet_test", out=str(out),
                                 epochs=1, batch=32, max_train=64, imgsz=12, verbose=0))
    return out


def _user_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "thesis.tex").write_text("years of work")
    (folder / "data").mkdir()
    (folder / "data" / "a.csv").write_text("1,2\n")
    return folder


def _leftovers(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("command", [
    TRAIN,
    ("prune", "RUN", "--method", "magnitude", "--sparsity", "0.5", "--epochs", "0"),
    ("qat", "RUN", "--epochs", "1"),
    ("quickstart", "--fast"),
    ("data", "synth", "--images", "2", "--val", "1", "--imgsz", "64"),
])
def test_a_folder_of_user_files_is_refused_and_kept(run_cli, tmp_path, command, trained_run):
    folder = _user_folder(tmp_path)
    args = [trained_run if a == "RUN" else a for a in command]
    args = args + [folder] if command[0] == "data" else args + ["--out", folder]
    result = run_cli(*args)
    assert_one_line_error(result, "did not write", "--overwrite")
    assert (folder / "thesis.tex").read_text() == "years of work"
    assert (folder / "data" / "a.csv").is_file()
    assert sorted(p.name for p in folder.iterdir()) == ["data", "thesis.tex"]
    assert _leftovers(tmp_path) == []


def test_out_dot_and_parents_are_refused_before_training(run_cli, tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    (work / "notes.txt").write_text("keep")
    monkeypatch.chdir(work)
    for out in (".", "..", str(work)):
        result = run_cli(*TRAIN, "--out", out, "--overwrite")
        assert_one_line_error(result, "current folder")
    assert (work / "notes.txt").read_text() == "keep"


def test_overwrite_replaces_only_what_edgecnn_writes(run_cli, tmp_path):
    folder = _user_folder(tmp_path)
    (folder / "run.json").write_text("{}")  # a same-named entry: the user asked to replace it
    result = run_cli(*TRAIN, "--out", folder, "--overwrite")
    assert result.exit_code == 0, result.err
    assert (folder / "thesis.tex").read_text() == "years of work"
    assert (folder / "data" / "a.csv").is_file()
    assert (folder / "model.keras").is_file() and (folder / "run.json").read_text() != "{}"
    # What edgecnn wrote is listed, the user's files are not.
    import json

    listed = set(json.loads((folder / MANIFEST).read_text())["files"])
    assert "model.keras" in listed and "thesis.tex" not in listed


def test_a_run_folder_of_ours_is_replaced_but_not_one_with_user_files(run_cli, tmp_path):
    out = tmp_path / "run"
    assert run_cli(*TRAIN, "--out", out).exit_code == 0
    first = (out / "run.json").stat().st_mtime_ns
    assert run_cli(*TRAIN, "--out", out, "--seed", "1").exit_code == 0
    assert (out / "run.json").stat().st_mtime_ns != first
    (out / "my_notes.md").write_text("mine")
    result = run_cli(*TRAIN, "--out", out)
    assert_one_line_error(result, "my_notes.md")
    assert (out / "my_notes.md").read_text() == "mine"


def test_legacy_run_dir_with_converted_model_is_ours(tmp_path):
    from edgecnn.fsutil import foreign_entries

    run = tmp_path / "old_run"
    run.mkdir()
    for name in ("run.json", "model.keras", "labels.txt", "history.csv", "curves.png"):
        (run / name).write_text("x")
    golden = Path(__file__).parent / "golden" / "tiny_detect.tflite"
    (run / "model_int8.tflite").write_bytes(golden.read_bytes())
    assert foreign_entries(run) == []
    (run / "someone_elses.tflite").write_bytes(b"\0\0\0\0TFL3" + b"\0" * 64)
    assert foreign_entries(run) == ["someone_elses.tflite"]


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002])
def test_outputs_follow_the_umask(tmp_path, mask):
    old = os.umask(mask)
    try:
        write_atomic(tmp_path / "a.txt", "x")
        with atomic_output(tmp_path / "b.mp4") as tmp:
            tmp.write_bytes(b"x")
        with atomic_dir(tmp_path / "run") as tmp:
            (tmp / "sub").mkdir()
            (tmp / "sub" / "c.txt").write_text("x")
    finally:
        os.umask(old)
    for path, base in ((tmp_path / "a.txt", 0o666), (tmp_path / "b.mp4", 0o666),
                       (tmp_path / "run", 0o777), (tmp_path / "run" / "sub", 0o777),
                       (tmp_path / "run" / "sub" / "c.txt", 0o666)):
        assert stat.S_IMODE(path.stat().st_mode) == base & ~mask, path


def test_a_failed_block_leaves_the_old_output(tmp_path):
    with atomic_dir(tmp_path / "run") as tmp:
        (tmp / "a.txt").write_text("first")
    with pytest.raises(RuntimeError):
        with atomic_dir(tmp_path / "run") as tmp:
            (tmp / "a.txt").write_text("second")
            raise RuntimeError("boom")
    assert (tmp_path / "run" / "a.txt").read_text() == "first"
    assert _leftovers(tmp_path) == []


def test_a_file_in_the_way_is_refused(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(UsageError, match="not a directory"):
        with atomic_dir(tmp_path / "f"):
            pass
