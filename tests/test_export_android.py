"""``edgecnn export android``: checks the model like the app will, copies it atomically."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from edgecnn.runtime import metadata as md
from conftest import assert_one_line_error

TINY = Path(__file__).resolve().parent / "golden" / "tiny_detect.tflite"


@pytest.fixture
def app(tmp_path) -> Path:
    """A minimal Android project layout: what export needs of android_demo."""
    root = tmp_path / "android_demo"
    (root / "app" / "src" / "main").mkdir(parents=True)
    return root


def _assets(app: Path) -> Path:
    return app / "app" / "src" / "main" / "assets"


def _files(app: Path) -> list[str]:
    assets = _assets(app)
    return sorted(p.name for p in assets.iterdir()) if assets.is_dir() else []


def test_copies_the_checked_model_into_the_assets(run_cli, app):
    res = run_cli("export", "android", TINY, "--app", app)
    assert res.exit_code == 0, res.err
    dest = _assets(app) / "model.tflite"
    assert dest.read_bytes() == TINY.read_bytes()
    assert _files(app) == ["model.tflite"]  # no temp file left behind
    assert "detect, 3 labels, input 1x64x64x3 int8" in res.out
    # The copy carries the metadata the Kotlin app reads.
    assert md.read(dest.read_bytes()).labels == ("circle", "square", "triangle")


def test_json_output_and_custom_name_replace_an_older_copy(run_cli, app):
    assert run_cli("export", "android", TINY, "--app", app, "--name", "det.tflite").exit_code == 0
    first = (_assets(app) / "det.tflite").stat().st_mtime_ns
    res = run_cli("export", "android", TINY, "--app", app, "--name", "det.tflite", "--json")
    assert res.exit_code == 0, res.err
    doc = json.loads(res.out)
    assert doc["task"] == "detect" and doc["input_shape"] == [1, 64, 64, 3]
    assert doc["size_bytes"] == TINY.stat().st_size
    assert (_assets(app) / "det.tflite").read_bytes() == TINY.read_bytes()
    assert (_assets(app) / "det.tflite").stat().st_mtime_ns != first   # the export replaced it


def test_model_without_metadata_is_refused(run_cli, app, tmp_path):
    flat, bundle = md.split_bundle(TINY.read_bytes())
    assert bundle is not None
    plain = tmp_path / "plain.tflite"
    plain.write_bytes(flat)
    res = run_cli("export", "android", plain, "--app", app)
    assert_one_line_error(res, "no edgecnn metadata", "edgecnn convert")
    assert _files(app) == []


def test_metadata_that_does_not_describe_the_model_is_refused(run_cli, app, tmp_path):
    data = TINY.read_bytes()
    meta = md.read(data)
    wrong = tmp_path / "wrong.tflite"
    wrong.write_bytes(md.attach(data, meta.replace(task="classify", decoder=None)))
    res = run_cli("export", "android", wrong, "--app", app)
    assert_one_line_error(res, "do not fit 3 labels", "expected one output [1, 3]")
    assert _files(app) == []


def test_not_a_tflite_file_is_refused(run_cli, app, tmp_path):
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a model at all")
    res = run_cli("export", "android", junk, "--app", app)
    assert_one_line_error(res, "not a TFLite model")
    res = run_cli("export", "android", tmp_path / "missing.tflite", "--app", app)
    assert_one_line_error(res, "not found")
    assert _files(app) == []


def test_unwritable_destination_is_a_usage_error(run_cli, app):
    # A file where the assets folder should be: cannot be created even by root.
    _assets(app).write_bytes(b"")
    res = run_cli("export", "android", TINY, "--app", app)
    assert_one_line_error(res, "cannot create output folder")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="root ignores directory permissions")
def test_read_only_assets_folder_is_a_usage_error(run_cli, app):
    _assets(app).mkdir()
    _assets(app).chmod(0o500)
    try:
        res = run_cli("export", "android", TINY, "--app", app)
    finally:
        _assets(app).chmod(0o700)
    assert_one_line_error(res, "not writable")
    assert _files(app) == []


def test_app_folder_and_name_are_checked_before_anything_is_written(run_cli, app, tmp_path):
    res = run_cli("export", "android", TINY, "--app", tmp_path / "nowhere")
    assert_one_line_error(res, "does not look like the edgecnn Android app", "--app")
    for bad in ("../model.tflite", "model.bin", ".tflite"):
        res = run_cli("export", "android", TINY, "--app", app, "--name", bad)
        assert_one_line_error(res, "--name")
    assert _files(app) == []


def test_default_app_is_the_demo_in_this_checkout():
    from edgecnn.export.android import default_app_dir

    app = default_app_dir()
    assert (app / "settings.gradle.kts").is_file()
    assert (app / "app" / "src" / "main" / "AndroidManifest.xml").is_file()


def test_help_of_the_export_commands(run_cli):
    res = run_cli("export", "--help")
    assert res.exit_code == 0 and "android" in res.out
    res = run_cli("export", "android", "--help")
    assert res.exit_code == 0 and "--app" in res.out and "--name" in res.out


def test_export_runs_without_tensorflow():
    from test_imports import _import_without_tf

    proc = _import_without_tf(["edgecnn.commands.export", "edgecnn.export.android"])
    assert proc.returncode == 0, proc.stderr
    assert "LOADED []" in proc.stdout


# ---------------------------------------------------------------- foreign detection layouts
@pytest.fixture(scope="module")
def foreign(tmp_path_factory) -> dict[str, Path]:
    """Tiny foreign-layout detectors (foreign_models.py, test_foreign_runtime.py's outputs)
    given edgecnn metadata by 'edgecnn metadata set'."""
    from foreign_models import build_tflite as _build
    from foreign_models import with_ultralytics_metadata as _ultralytics
    from test_foreign_runtime import END2END, SSD, YOLO

    from edgecnn.cli import main

    root = tmp_path_factory.mktemp("foreign_export")
    built = {"ultralytics_yolo": _ultralytics(_build([YOLO])),   # channels first, linear resize
             "ultralytics_yolo_t": _build([YOLO.transpose(0, 2, 1)]),
             "ultralytics_end2end": _build([END2END]), "ssd_postprocess": _build(list(SSD))}
    paths = {}
    for name, data in built.items():
        src = root / f"{name}_plain.tflite"
        src.write_bytes(data)
        paths[name] = root / f"{name}.tflite"
        decoder = name.removesuffix("_t")
        assert main(["metadata", "set", str(src), "-o", str(paths[name]), "--task", "detect",
                     "--labels", "a,b,c", "--decoder", decoder]) == 0
    return paths


@pytest.mark.parametrize("name", ["ultralytics_yolo", "ultralytics_yolo_t",
                                  "ultralytics_end2end", "ssd_postprocess"])
def test_foreign_detection_layouts_are_exported(run_cli, app, foreign, name):
    res = run_cli("export", "android", foreign[name], "--app", app, "--json")
    assert res.exit_code == 0, res.err
    dest = _assets(app) / "model.tflite"
    assert dest.read_bytes() == foreign[name].read_bytes()
    meta = md.read(dest.read_bytes())
    assert meta.decoder.type == name.removesuffix("_t") and meta.input.layout == "NHWC"
    assert json.loads(res.out)["task"] == "detect"
    if name == "ultralytics_yolo":   # Ultralytics' file: one bilinear resize, as the app does
        assert meta.input.interpolation == "linear"


def test_layouts_the_app_cannot_feed_or_decode_are_refused(run_cli, app, foreign, tmp_path):
    data = foreign["ultralytics_end2end"].read_bytes()
    meta = md.read(data)
    nchw = tmp_path / "nchw.tflite"
    nchw.write_bytes(md.attach(data, meta.replace(input=dataclasses.replace(meta.input, layout="NCHW"))))
    assert_one_line_error(run_cli("export", "android", nchw, "--app", app),
                          "the Android app feeds NHWC images", "wants NCHW")
    future = tmp_path / "future.tflite"
    future.write_bytes(md.attach(data, meta.replace(decoder=md.DecoderSpec(type="yolo_v99"))))
    assert_one_line_error(run_cli("export", "android", future, "--app", app),
                          "does not decode 'yolo_v99' detection heads",
                          "anchor_free_ltrb, ssd_postprocess, ultralytics_end2end, "
                          "ultralytics_yolo")
    assert _files(app) == []
