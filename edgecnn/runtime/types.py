"""Small typed records for results: what a classifier or detector returns."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Category:
    index: int
    label: str
    score: float

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Rect:
    """A box in original-image pixels: left, top, right, bottom."""

    left: float
    top: float
    right: float
    bottom: float

    @property
    def width(self) -> float:
        return self.right - self.left

    @property
    def height(self) -> float:
        return self.bottom - self.top


@dataclass(frozen=True)
class Detection:
    """One detected object; ``track_id`` is set when a tracker follows it across frames."""

    box: Rect
    category: Category
    track_id: int | None = None

    def to_dict(self) -> dict:
        b = self.box
        out = {"box": [round(b.left, 2), round(b.top, 2), round(b.right, 2), round(b.bottom, 2)],
               "index": self.category.index, "label": self.category.label,
               "score": round(self.category.score, 5)}
        if self.track_id is not None:
            out["track_id"] = self.track_id
        return out


@dataclass(frozen=True)
class Letterbox:
    """How an image was fitted into the model input: ``model = image * scale + pad``."""

    scale_x: float
    scale_y: float
    pad_x: float
    pad_y: float
    src_width: int
    src_height: int

    def to_image(self, x, y):
        """Map model-input coordinates back to the original image (works on numpy arrays)."""
        return (x - self.pad_x) / self.scale_x, (y - self.pad_y) / self.scale_y
