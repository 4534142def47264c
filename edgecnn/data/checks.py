"""Label checks: every problem found while reading a dataset is counted with its file names.

Readers never crash on a bad label and never drop one silently: they fix what can be fixed
(clip a box to the image), skip what cannot (a zero-area box, an unreadable image) and record
either in a :class:`LabelReport`. ``edgecnn data check SPEC`` prints the report; ``strict=True``
turns any problem into a :class:`~edgecnn.errors.UsageError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from edgecnn.errors import UsageError


class Problem(str, Enum):
    """Kinds of label problems; the value is the key used in reports and JSON."""

    BOX_OUTSIDE = "box_outside_image"  # clipped to the image and kept
    MALFORMED = "malformed_label"  # a line / xml / json entry that cannot be parsed; skipped
    EMPTY_LINE = "empty_line"  # blank line inside a label file; ignored
    UNKNOWN_CLASS = "unknown_class"  # class id or name not in the names list; box skipped
    ZERO_AREA = "zero_area_box"  # width or height <= 0 after clipping; box skipped
    MISSING_IMAGE = "missing_image"  # listed or annotated image file does not exist; skipped
    UNREADABLE_IMAGE = "unreadable_image"  # image header or pixels cannot be decoded; skipped
    SIZE_MISMATCH = "size_mismatch"  # annotated size differs from the file; file size used
    ORPHAN_LABEL = "label_without_image"  # YOLO label file whose image is absent; ignored
    BACKGROUND = "background_image"  # no boxes (no or empty label file); kept as negative
    DIFFICULT = "difficult_skipped"  # VOC difficult=1 object; skipped like VOC evaluation does
    CROWD = "crowd_skipped"  # COCO iscrowd=1 annotation; skipped like COCO evaluation does
    POLYGON = "polygon_converted"  # YOLO segment line; converted to its bounding box
    NOT_REGULAR = "not_a_regular_file"  # a FIFO, device or socket named as image/label; unread
    TOO_LARGE = "file_too_large"  # a label/annotation file over its size limit; skipped
    NOT_UTF8 = "not_utf8"  # text that is not UTF-8; read as Latin-1, names may differ
    DUPLICATE = "duplicate_entry"  # COCO image id used twice (all skipped), image listed twice
    NOT_IMAGE = "not_an_image"  # a file of another format in an image folder (.gif); skipped
    HIDDEN = "hidden_skipped"  # hidden files and folders (.DS_Store, ._x.jpg, .git); skipped


# Expected in healthy datasets: reported, never an error under ``strict``.
INFO_KINDS = frozenset({Problem.BACKGROUND, Problem.DIFFICULT, Problem.CROWD, Problem.POLYGON,
                        Problem.HIDDEN})

DESCRIPTIONS = {
    Problem.BOX_OUTSIDE: "boxes outside the image (clipped)",
    Problem.MALFORMED: "malformed label lines/entries (skipped)",
    Problem.EMPTY_LINE: "empty lines in label files (ignored)",
    Problem.UNKNOWN_CLASS: "unknown class ids (boxes skipped)",
    Problem.ZERO_AREA: "zero-area boxes (skipped)",
    Problem.MISSING_IMAGE: "missing images (skipped)",
    Problem.UNREADABLE_IMAGE: "images that fail to decode (skipped)",
    Problem.SIZE_MISMATCH: "annotated size differs from the image (image size used)",
    Problem.ORPHAN_LABEL: "label files without an image (ignored)",
    Problem.BACKGROUND: "images without labels (kept as backgrounds)",
    Problem.DIFFICULT: "VOC 'difficult' objects (skipped)",
    Problem.CROWD: "COCO crowd annotations (skipped)",
    Problem.POLYGON: "segment polygons (converted to boxes)",
    Problem.NOT_REGULAR: "FIFOs, devices or sockets where a file should be (not read)",
    Problem.TOO_LARGE: "files over the size limit of their kind (skipped)",
    Problem.NOT_UTF8: "text files that are not UTF-8 (read as Latin-1)",
    Problem.DUPLICATE: "duplicate image ids or list entries (skipped)",
    Problem.NOT_IMAGE: "files of other formats in image folders (skipped)",
    Problem.HIDDEN: "hidden files and folders (skipped)",
}


@dataclass
class LabelReport:
    """Counts and file names of every label problem, plus per-split totals.

    ``counts[kind]`` counts occurrences (boxes, lines or images); ``files[kind]`` lists each
    affected file once, as a path relative to the dataset root where possible.
    """

    counts: dict[str, int] = field(default_factory=dict)
    files: dict[str, list[str]] = field(default_factory=dict)
    images: dict[str, int] = field(default_factory=dict)
    boxes: dict[str, int] = field(default_factory=dict)
    class_counts: list[int] = field(default_factory=list)
    _seen: dict[str, set[str]] = field(default_factory=dict, repr=False)

    def add(self, kind: Problem, file: str, n: int = 1) -> None:
        """Record ``n`` occurrences of ``kind`` in ``file``."""
        key = Problem(kind).value
        self.counts[key] = self.counts.get(key, 0) + n
        seen = self._seen.setdefault(key, set())
        if file not in seen:
            seen.add(file)
            self.files.setdefault(key, []).append(file)

    def count(self, kind: Problem) -> int:
        return self.counts.get(Problem(kind).value, 0)

    def files_of(self, kind: Problem) -> list[str]:
        return list(self.files.get(Problem(kind).value, []))

    @property
    def problems(self) -> dict[str, int]:
        """Counts of the kinds that are real problems (not the informational ones)."""
        info = {k.value for k in INFO_KINDS}
        return {k: v for k, v in self.counts.items() if k not in info and v}

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self, max_files: int | None = None) -> dict:
        """JSON-ready view; ``max_files`` limits the file names listed per kind."""
        return {
            "ok": self.ok,
            "images": dict(self.images),
            "boxes": dict(self.boxes),
            "class_counts": list(self.class_counts),
            "counts": {k: self.counts[k] for k in _ordered(self.counts)},
            "files": {k: self.files.get(k, [])[:max_files] for k in _ordered(self.counts)},
        }

    def lines(self, max_files: int = 5) -> list[str]:
        """Human-readable summary, one problem kind per line."""
        out = []
        for key in _ordered(self.counts):
            files = self.files.get(key, [])
            shown = ", ".join(files[:max_files])
            more = f" (+{len(files) - max_files} more files)" if len(files) > max_files else ""
            level = "info" if Problem(key) in INFO_KINDS else "problem"
            desc = DESCRIPTIONS[Problem(key)]
            out.append(f"  {level:7s} {desc}: {self.counts[key]} in {len(files)} files: "
                       f"{shown}{more}")
        return out

    def raise_if_problems(self, spec: str) -> None:
        """The ``strict`` mode: any real problem becomes one UsageError naming files."""
        if self.ok:
            return
        parts = []
        for key, n in self.problems.items():
            files = self.files.get(key, [])
            parts.append(f"{n} {key} ({', '.join(files[:3])}{', ...' if len(files) > 3 else ''})")
        raise UsageError(f"dataset {spec} has label problems: {'; '.join(parts)}",
                         "fix the files, or run without --strict to skip/clip them")


def _ordered(counts: dict[str, int]) -> list[str]:
    order = [p.value for p in Problem]
    return sorted((k for k, v in counts.items() if v), key=order.index)
