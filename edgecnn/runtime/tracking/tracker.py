"""ByteTrack-style multi-object tracking: two-stage association with a Kalman motion model.

Per frame (Zhang et al., "ByteTrack", ECCV 2022, with the defaults of its reference code):

1. every track's box is predicted one frame ahead (:mod:`.kalman`);
2. confirmed tracks (seen or recently lost) are matched to the *high*-score detections by IoU;
3. the confirmed tracks still unmatched and seen last frame get a second chance against the
   *low*-score detections: partly occluded objects score low, and this keeps their identity
   instead of dropping them;
4. confirmed tracks still unmatched are matched to the high-score detections left by the
   distance of their centres (within ``recover_distance`` box diagonals): an object coming
   out from behind another one or a pillar reappears as a growing sliver that overlaps its
   prediction too little for IoU (an addition to ByteTrack, measured in docs/DECISIONS.md);
5. tentative tracks (born last frame) are matched to the high-score detections left; a match
   confirms them, otherwise they are discarded (one-frame false positives never get an ID);
6. high-score detections still unmatched start tentative tracks; confirmed tracks unseen for
   more than ``max_lost_frames`` (or predicted outside the image) are removed.

Boxes of different classes are never associated (``per_class``). IDs are handed out at
confirmation, so the IDs a user sees are 1, 2, 3, ... without gaps. State lives in numpy
arrays (one row per track), so a frame costs a fixed number of vectorized operations.

Example:
    tracker = ByteTracker(TrackerOptions(high_score=0.5))
    for frame in frames:
        tracked = tracker.update_detections(detector.detect(frame))
        for det in tracked:
            print(det.track_id, det.category.label, det.box)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from edgecnn.errors import UsageError
from edgecnn.runtime.tracking import kalman
from edgecnn.runtime.tracking.assign import greedy_match, iou_matrix
from edgecnn.runtime.types import Detection

TENTATIVE, TRACKED, LOST = 0, 1, 2


@dataclass(frozen=True)
class TrackerOptions:
    """Thresholds of the association (ByteTrack's defaults where it has one).

    Attributes:
        high_score: detections scoring ``>=`` this take part in the first association.
        low_score: detections in ``[low_score, high_score)`` only in the second one;
            lower ones are ignored.
        new_track_score: an unmatched detection starts a track if it scores ``>=`` this
            (None: ``high_score``).
        match_iou: minimum IoU of the first association (ByteTrack: cost 0.8 = IoU 0.2).
        low_match_iou: minimum IoU against low-score detections (ByteTrack: 0.5).
        tentative_match_iou: minimum IoU confirming a tentative track (ByteTrack: 0.3).
        max_lost_frames: frames a confirmed track survives unseen (ByteTrack's buffer: 30).
        min_hits: matches that confirm a track (2: born, then matched the next frame).
        recover_distance: step 4's gate, in diagonals of the larger of the predicted and the
            detected box (0: no step 4).
        per_class: associate only boxes of the same class.
    """

    high_score: float = 0.5
    low_score: float = 0.1
    new_track_score: float | None = None
    match_iou: float = 0.2
    low_match_iou: float = 0.5
    tentative_match_iou: float = 0.3
    max_lost_frames: int = 30
    min_hits: int = 2
    recover_distance: float = 1.5
    per_class: bool = True

    def check(self) -> "TrackerOptions":
        """Raise UsageError for options that cannot work; returns self."""
        for name in ("high_score", "low_score", "match_iou", "low_match_iou",
                     "tentative_match_iou"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise UsageError(f"tracker {name} must be within 0..1, got {value}")
        if self.low_score > self.high_score:
            raise UsageError(f"tracker low_score {self.low_score} is above high_score "
                             f"{self.high_score}", "lower low_score")
        if self.max_lost_frames < 0 or self.min_hits < 1 or self.recover_distance < 0:
            raise UsageError("tracker max_lost_frames and recover_distance must be >= 0, "
                             "min_hits >= 1")
        return self


@dataclass(frozen=True, eq=False)
class TrackOutput:
    """Tracks of one frame.

    Attributes:
        ids: ``(M,)`` IDs of the confirmed tracks matched in this frame, in input order.
        det_index: ``(M,)`` index of each one's detection in the frame's input.
        boxes: ``(M, 4)`` xyxy boxes after the Kalman correction (smoother than detections).
        classes, scores: ``(M,)`` class and score of the matched detection.
        lost: IDs of confirmed tracks not seen in this frame but still kept.
        removed: IDs of confirmed tracks dropped in this frame (unseen too long).
    """

    ids: np.ndarray
    det_index: np.ndarray
    boxes: np.ndarray
    classes: np.ndarray
    scores: np.ndarray
    lost: tuple[int, ...] = ()
    removed: tuple[int, ...] = ()


_FIELDS = ("mean", "cov", "ids", "cls", "state", "hits", "last", "score", "det")


class ByteTracker:
    """Tracks detections across frames of one video; one instance per stream."""

    def __init__(self, options: TrackerOptions = TrackerOptions()):
        self.options = options.check()
        self.new_score = options.high_score if options.new_track_score is None \
            else options.new_track_score
        self.reset()

    def reset(self) -> None:
        """Forget every track (a new video, or a stream that came back after a long gap)."""
        self.frame = 0
        self.next_id = 1
        self.mean = np.zeros((0, 8))
        self.cov = np.zeros((0, 4, 3))
        self.ids = np.zeros(0, np.int64)       # 0 while tentative
        self.cls = np.zeros(0, np.int64)
        self.state = np.zeros(0, np.int8)
        self.hits = np.zeros(0, np.int64)
        self.last = np.zeros(0, np.int64)      # frame of the last match
        self.score = np.zeros(0, np.float64)
        self.det = np.zeros(0, np.int64)       # detection matched this frame, -1: none

    @property
    def active_ids(self) -> np.ndarray:
        """IDs of the confirmed tracks currently kept (seen or lost)."""
        return self.ids[self.state != TENTATIVE]

    def update(self, boxes: np.ndarray, scores: np.ndarray,
               classes: np.ndarray | None = None,
               image_size: tuple[int, int] | None = None) -> TrackOutput:
        """Advance one frame with its detections.

        Args:
            boxes: ``(N, 4)`` xyxy in image pixels.
            scores: ``(N,)`` confidences in 0..1.
            classes: ``(N,)`` class ids (None: all class 0).
            image_size: ``(width, height)``; lost tracks predicted wholly outside it are
                removed at once instead of waiting ``max_lost_frames`` (they left the view).

        Returns:
            The confirmed tracks matched in this frame (:class:`TrackOutput`).
        """
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        classes = np.zeros(len(boxes), np.int64) if classes is None \
            else np.asarray(classes, dtype=np.int64).reshape(-1)
        if not len(boxes) == len(scores) == len(classes):
            raise UsageError(f"tracker got {len(boxes)} boxes, {len(scores)} scores and "
                             f"{len(classes)} classes", "pass one of each per detection")
        self.frame += 1
        opts = self.options
        self.det[:] = -1
        # Lost tracks keep moving with their velocity but stop growing or shrinking.
        self.mean[self.state == LOST, 6:] = 0.0
        self.mean, self.cov = kalman.predict(self.mean, self.cov)
        predicted = kalman.xywh_to_xyxy(self.mean)

        high = np.flatnonzero(scores >= opts.high_score)
        low = np.flatnonzero((scores >= opts.low_score) & (scores < opts.high_score))
        track_of_det = np.full(len(boxes), -1, np.int64)
        taken = np.zeros(len(self.ids), bool)   # tracks matched in this frame

        def stage(tracks, dets, match):
            t, d = match(tracks, dets, predicted, boxes, classes)
            track_of_det[d] = t
            taken[t] = True

        confirmed = np.flatnonzero(self.state != TENTATIVE)
        stage(confirmed, high, self._by_iou(opts.match_iou))
        left = confirmed[~taken[confirmed]]
        recent = left[self.state[left] == TRACKED]
        stage(recent, low, self._by_iou(opts.low_match_iou))
        stage(left[~taken[left]], high[track_of_det[high] < 0], self._recover)
        tentative = np.flatnonzero(self.state == TENTATIVE)
        high_left = high[track_of_det[high] < 0]
        stage(tentative, high_left, self._by_iou(opts.tentative_match_iou))

        matched = np.flatnonzero(track_of_det >= 0)
        self._correct(track_of_det[matched], matched, boxes, scores, classes)
        self.state[recent[~taken[recent]]] = LOST
        births = high_left[(track_of_det[high_left] < 0) & (scores[high_left] >= self.new_score)]
        gone = np.zeros(len(self.ids), bool)
        gone[tentative[~taken[tentative]]] = True
        if image_size is not None:
            gone |= _outside(predicted, image_size) & (self.state == LOST)
        dead = self._remove(gone)
        self._birth(births, boxes[births], scores[births], classes[births])
        return self._output(dead)

    def update_detections(self, detections: Sequence[Detection]) -> list[Detection]:
        """:meth:`update` on typed detections; returns the tracked ones with ``track_id`` set.

        Detections that no confirmed track took (low-score clutter, the first frame of a new
        object) are left out; the order of the input is kept.
        """
        return attach_ids(detections, self.update(*detection_arrays(detections)))

    # -- internals ----------------------------------------------------------------------
    def _by_iou(self, threshold: float):
        """A matcher of tracks and detections by IoU of predicted and detected boxes."""
        def match(tracks, dets, predicted, boxes, classes):
            if tracks.size == 0 or dets.size == 0:
                empty = np.zeros(0, np.int64)
                return empty, empty
            iou = iou_matrix(predicted[tracks], boxes[dets])
            if self.options.per_class:
                iou[self.cls[tracks][:, None] != classes[dets][None, :]] = 0.0
            r, c = greedy_match(iou, threshold)
            return tracks[r], dets[c]

        return match

    def _recover(self, tracks: np.ndarray, dets: np.ndarray, predicted: np.ndarray,
                 boxes: np.ndarray, classes: np.ndarray):
        """Step 4: unmatched confirmed tracks against the detections left, by centre distance."""
        gate = self.options.recover_distance
        if gate <= 0 or tracks.size == 0 or dets.size == 0:
            empty = np.zeros(0, np.int64)
            return empty, empty
        pred = predicted[tracks]
        centre_t = (pred[:, :2] + pred[:, 2:]) / 2
        centre_d = (boxes[dets, :2] + boxes[dets, 2:]) / 2
        diag_t = np.hypot(pred[:, 2] - pred[:, 0], pred[:, 3] - pred[:, 1])
        det = boxes[dets]
        diag_d = np.hypot(det[:, 2] - det[:, 0], det[:, 3] - det[:, 1])
        # The larger of the two boxes sets the gate: a sliver on either side must not shrink it.
        reach = gate * np.maximum(diag_t[:, None], diag_d[None, :])
        dist = np.linalg.norm(centre_t[:, None, :] - centre_d[None, :, :], axis=2)
        closeness = 1.0 - dist / np.maximum(reach, 1e-9)
        if self.options.per_class:
            closeness[self.cls[tracks][:, None] != classes[dets][None, :]] = -1.0
        r, c = greedy_match(closeness, 1e-9)
        return tracks[r], dets[c]

    def _correct(self, rows, dets, boxes, scores, classes) -> None:
        if rows.size == 0:
            return
        self.mean[rows], self.cov[rows] = kalman.update(
            self.mean[rows], self.cov[rows], kalman.xyxy_to_xywh(boxes[dets]))
        self.hits[rows] += 1
        self.last[rows] = self.frame
        self.det[rows] = dets
        self.score[rows] = scores[dets]
        self.cls[rows] = classes[dets]
        promote = rows[(self.state[rows] == TENTATIVE) & (self.hits[rows] >= self.options.min_hits)]
        self._confirm(promote)
        self.state[rows[self.state[rows] == LOST]] = TRACKED

    def _confirm(self, rows: np.ndarray) -> None:
        if rows.size:
            self.state[rows] = TRACKED
            self.ids[rows] = np.arange(self.next_id, self.next_id + rows.size)
            self.next_id += int(rows.size)

    def _birth(self, dets, boxes, scores, classes) -> None:
        n = len(boxes)
        if n == 0:
            return
        mean, cov = kalman.initiate(kalman.xyxy_to_xywh(boxes))
        start = len(self.ids)
        self._append(mean=mean, cov=cov, ids=np.zeros(n, np.int64), cls=classes,
                     state=np.full(n, TENTATIVE, np.int8), hits=np.ones(n, np.int64),
                     last=np.full(n, self.frame, np.int64), score=scores,
                     det=dets.astype(np.int64))
        if self.frame == 1 or self.options.min_hits <= 1:
            # Nothing to confirm against on the first frame: ByteTrack activates at once.
            self._confirm(np.arange(start, start + n))

    def _append(self, **rows) -> None:
        for name in _FIELDS:
            setattr(self, name, np.concatenate([getattr(self, name), rows[name]]))

    def _remove(self, extra: np.ndarray) -> tuple[int, ...]:
        """Drop the ``extra`` rows (a mask) and tracks lost too long; returns the confirmed
        IDs removed."""
        drop = (self.state == LOST) & (self.frame - self.last > self.options.max_lost_frames)
        drop |= extra
        if not drop.any():
            return ()
        removed = tuple(int(i) for i in self.ids[drop & (self.state != TENTATIVE)])
        keep = ~drop
        for name in _FIELDS:
            setattr(self, name, getattr(self, name)[keep])
        return removed

    def _output(self, removed: tuple[int, ...]) -> TrackOutput:
        rows = np.flatnonzero((self.state == TRACKED) & (self.det >= 0))
        rows = rows[np.argsort(self.det[rows], kind="stable")]
        lost = tuple(int(i) for i in self.ids[self.state == LOST])
        return TrackOutput(ids=self.ids[rows].copy(), det_index=self.det[rows].copy(),
                           boxes=kalman.xywh_to_xyxy(self.mean[rows]),
                           classes=self.cls[rows].copy(), scores=self.score[rows].copy(),
                           lost=lost, removed=removed)


def _outside(boxes: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """Mask of the boxes that lie wholly outside the image."""
    w, h = image_size
    return (boxes[:, 2] < 0) | (boxes[:, 0] > w) | (boxes[:, 3] < 0) | (boxes[:, 1] > h)


def detection_arrays(detections: Sequence[Detection]
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(boxes (N, 4), scores (N,), classes (N,))`` of typed detections."""
    boxes = np.array([(d.box.left, d.box.top, d.box.right, d.box.bottom) for d in detections],
                     dtype=np.float64).reshape(-1, 4)
    scores = np.array([d.category.score for d in detections], dtype=np.float64)
    classes = np.array([d.category.index for d in detections], dtype=np.int64)
    return boxes, scores, classes


def attach_ids(detections: Sequence[Detection], out: TrackOutput) -> list[Detection]:
    """The detections a track took, in input order, each with its ``track_id``."""
    return [replace(detections[d], track_id=int(i))
            for d, i in zip(out.det_index.tolist(), out.ids.tolist())]
