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


# -- file outputs: each command that writes a file refuses to replace one it did not write ----

GOLDEN = Path(__file__).parent / "golden" / "tiny_detect.tflite"


def _users_file(path: Path, data: bytes = b"the user's own bytes") -> Path:
    path.write_bytes(data)
    return path


def _kept(path: Path, data: bytes = b"the user's own bytes") -> bool:
    return path.read_bytes() == data


def test_convert_refuses_a_tflite_without_edgecnn_metadata(run_cli, tmp_path, trained_run):
    theirs = _users_file(tmp_path / "model.tflite", b"\0\0\0\0TFL3" + b"\0" * 64)
    result = run_cli("convert", trained_run, "--quant", "float32", "-o", theirs)
    assert_one_line_error(result, "edgecnn did not write", "--overwrite")
    assert _kept(theirs, b"\0\0\0\0TFL3" + b"\0" * 64)
    # a .tflite edgecnn converted (metadata inside) is replaced without a word
    ours = tmp_path / "ours.tflite"
    ours.write_bytes(GOLDEN.read_bytes())
    result = run_cli("convert", trained_run, "--quant", "float32", "-o", ours,
                     "--held-out", "0")
    assert result.exit_code == 0, result.err
    assert ours.read_bytes() != GOLDEN.read_bytes()


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    from edgecnn.data.synth_video import write_synthetic_video

    path = tmp_path_factory.mktemp("clip") / "clip.avi"
    write_synthetic_video(path, frames=4, size=(96, 64), seed=1)
    return path


@pytest.mark.parametrize("option,name", [("--save", "out.mp4"), ("--json", "frames.jsonl")])
def test_camera_refuses_a_users_file_and_replaces_its_own(run_cli, tmp_path, clip, option,
                                                          name):
    theirs = _users_file(tmp_path / name)
    args = ("camera", GOLDEN, "--source", clip, "-q", option, theirs)
    assert_one_line_error(run_cli(*args), "edgecnn did not write", option)
    assert _kept(theirs)
    assert run_cli(*args, "--overwrite").exit_code == 0
    assert not _kept(theirs) and stat.S_IMODE(theirs.stat().st_mode) == 0o666 & ~_umask()
    first = theirs.stat().st_mtime_ns
    result = run_cli(*args)                 # now it is edgecnn's: replaced without --overwrite
    assert result.exit_code == 0, result.err
    assert theirs.stat().st_mtime_ns != first
    theirs.write_bytes(b"edited by the user since")   # same name, not edgecnn's file any more
    assert_one_line_error(run_cli(*args), "edgecnn did not write")


def _umask() -> int:
    from edgecnn.fsutil import current_umask

    return current_umask()


def test_predict_save_refuses_a_users_file_before_running(run_cli, tmp_path):
    import cv2
    import numpy as np

    image = tmp_path / "scene.png"
    cv2.imwrite(str(image), np.zeros((64, 64, 3), np.uint8))
    drawn = tmp_path / "drawn"
    drawn.mkdir()
    theirs = _users_file(drawn / "scene.png")
    assert_one_line_error(run_cli("predict", GOLDEN, image, "--save", drawn), "did not write")
    assert _kept(theirs) and sorted(p.name for p in drawn.iterdir()) == ["scene.png"]
    assert run_cli("predict", GOLDEN, image, "--save", drawn, "--overwrite").exit_code == 0
    assert run_cli("predict", GOLDEN, image, "--save", drawn).exit_code == 0   # ours now
    assert cv2.imread(str(theirs)) is not None


@pytest.mark.parametrize("option,name", [("--plot", "bench.png"), ("--csv", "bench.csv")])
def test_bench_outputs_refuse_a_users_file(run_cli, tmp_path, option, name):
    theirs = _users_file(tmp_path / name)
    args = ("bench", GOLDEN, "--runs", "3", "--warmup", "1", "--threads", "1", option, theirs)
    result = run_cli(*args)
    assert_one_line_error(result, "edgecnn did not write", option)
    assert "p50" not in result.out            # refused before measuring
    assert _kept(theirs)
    assert run_cli(*args, "--overwrite").exit_code == 0 and not _kept(theirs)
    assert run_cli(*args).exit_code == 0      # written by edgecnn: replaced again


def test_export_android_refuses_an_asset_it_did_not_write(run_cli, tmp_path):
    app = tmp_path / "android_demo"
    assets = app / "app" / "src" / "main" / "assets"
    assets.mkdir(parents=True)
    theirs = _users_file(assets / "model.tflite")
    args = ("export", "android", GOLDEN, "--app", app)
    assert_one_line_error(run_cli(*args), "edgecnn did not write", "--overwrite")
    assert _kept(theirs)
    assert run_cli(*args, "--overwrite").exit_code == 0
    assert theirs.read_bytes() == GOLDEN.read_bytes()
    assert run_cli(*args).exit_code == 0      # a model with edgecnn metadata is edgecnn's


def test_data_check_preview_refuses_a_users_file(run_cli, tmp_path):
    from edgecnn.data.synth import make_synthetic_dataset

    data = make_synthetic_dataset(tmp_path / "ds", 3, 1, imgsz=64)
    theirs = _users_file(tmp_path / "preview.png")
    assert_one_line_error(run_cli("data", "check", data, "--preview", theirs), "did not write")
    assert _kept(theirs)
    result = run_cli("data", "check", data, "--preview", theirs, "--overwrite")
    assert result.exit_code == 0, result.err
    import cv2

    grid = cv2.imread(str(theirs))
    assert grid is not None and grid.shape[0] >= 320 and "4 images" in result.out
    assert run_cli("data", "check", data, "--preview", theirs).exit_code == 0
