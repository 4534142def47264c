package org.edgecnn.core

/**
 * ByteTrack-style multi-object tracking, a port of `edgecnn.runtime.tracking.tracker`
 * (Python), checked against it with `tests/golden/track_golden.json`: same IDs, same
 * detection per track, same filtered boxes.
 *
 * Per frame: predict every track (constant-velocity Kalman filter on centre and size, kept as
 * four independent 2x2 covariance blocks); match confirmed tracks to high-score detections by
 * IoU; tracks seen last frame to low-score detections; still unmatched confirmed tracks to the
 * high-score detections left by centre distance (objects coming out from behind something);
 * tentative tracks to the rest. Unmatched high-score detections start tentative tracks, which
 * get an ID when matched again. Boxes of different classes never match.
 */
class TrackerOptions(
    val highScore: Double = 0.5,
    val lowScore: Double = 0.1,
    val newTrackScore: Double? = null,
    val matchIou: Double = 0.2,
    val lowMatchIou: Double = 0.5,
    val tentativeMatchIou: Double = 0.3,
    val maxLostFrames: Int = 30,
    val minHits: Int = 2,
    val recoverDistance: Double = 1.5,
    val perClass: Boolean = true
)

/** The confirmed tracks matched in one frame, in input order (`detIndex` ascending). */
class TrackOutput(
    val ids: IntArray,
    val detIndex: IntArray,
    /** Kalman-corrected boxes, xyxy. */
    val boxes: List<Rect>,
    val lost: IntArray,
    val removed: IntArray
)

private const val TENTATIVE = 0
private const val TRACKED = 1
private const val LOST = 2
private const val STD_POSITION = 1.0 / 20.0
private const val STD_VELOCITY = 1.0 / 160.0

private class Track(
    /** cx, cy, w, h, then their velocities. */
    val mean: DoubleArray,
    /** Per coordinate k: [3k] var(pos), [3k+1] cov(pos, vel), [3k+2] var(vel). */
    val cov: DoubleArray,
    var cls: Int,
    var score: Double,
    var frame: Int
) {
    var id = 0
    var state = TENTATIVE
    var hits = 1
    var det = -1

    fun box(): Rect {
        val hw = mean[2] / 2
        val hh = mean[3] / 2
        return Rect(mean[0] - hw, mean[1] - hh, mean[0] + hw, mean[1] + hh)
    }
}

private fun sizeStd(mean: DoubleArray, k: Int, weight: Double): Double {
    val s = weight * Math.max(mean[2 + k % 2], 1.0)
    return s * s
}

private fun measure(b: Rect): DoubleArray {
    val w = b.right - b.left
    val h = b.bottom - b.top
    return doubleArrayOf(b.left + w / 2, b.top + h / 2, w, h)
}

private fun newTrack(box: Rect, cls: Int, score: Double, frame: Int): Track {
    val z = measure(box)
    val mean = doubleArrayOf(z[0], z[1], z[2], z[3], 0.0, 0.0, 0.0, 0.0)
    val cov = DoubleArray(12)
    for (k in 0 until 4) {
        cov[3 * k] = sizeStd(mean, k, 2 * STD_POSITION)
        cov[3 * k + 2] = sizeStd(mean, k, 10 * STD_VELOCITY)
    }
    return Track(mean, cov, cls, score, frame)
}

private fun predict(t: Track) {
    val m = t.mean
    val c = t.cov
    for (k in 0 until 4) {
        val pp = c[3 * k]
        val pv = c[3 * k + 1]
        val vv = c[3 * k + 2]
        c[3 * k] = pp + 2 * pv + vv + sizeStd(m, k, STD_POSITION)
        c[3 * k + 1] = pv + vv
        c[3 * k + 2] = vv + sizeStd(m, k, STD_VELOCITY)
    }
    for (k in 0 until 4) m[k] += m[k + 4]
}

private fun correct(t: Track, box: Rect) {
    val z = measure(box)
    val m = t.mean
    val c = t.cov
    val s = DoubleArray(4) { c[3 * it] + sizeStd(m, it, STD_POSITION) }
    for (k in 0 until 4) {
        val pp = c[3 * k]
        val pv = c[3 * k + 1]
        val vv = c[3 * k + 2]
        val gainP = pp / s[k]
        val gainV = pv / s[k]
        val innovation = z[k] - m[k]
        m[k] += gainP * innovation
        m[k + 4] += gainV * innovation
        c[3 * k] = pp - gainP * pp
        c[3 * k + 1] = pv - gainP * pv
        c[3 * k + 2] = vv - gainV * pv
    }
}

/** Pairs (row, col) by descending score, each row and column once; ties in row-major order. */
internal fun greedyMatch(score: Array<DoubleArray>, threshold: Double): List<IntArray> {
    val candidates = ArrayList<IntArray>()
    for (r in score.indices) for (c in score[r].indices) if (score[r][c] >= threshold) candidates.add(intArrayOf(r, c))
    val sorted = candidates.sortedByDescending { score[it[0]][it[1]] }  // stable
    val usedR = HashSet<Int>()
    val usedC = HashSet<Int>()
    val out = ArrayList<IntArray>()
    for (p in sorted) {
        if (p[0] !in usedR && p[1] !in usedC) {
            usedR.add(p[0]); usedC.add(p[1]); out.add(p)
        }
    }
    return out
}

/** IoU as the Python tracker computes it (empty union -> 0 / 1e-12 = 0). */
private fun iou(a: Rect, b: Rect): Double {
    val iw = Math.max(Math.min(a.right, b.right) - Math.max(a.left, b.left), 0.0)
    val ih = Math.max(Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top), 0.0)
    val inter = iw * ih
    val union = (a.right - a.left) * (a.bottom - a.top) + (b.right - b.left) * (b.bottom - b.top) - inter
    return inter / Math.max(union, 1e-12)
}

class ByteTracker(val options: TrackerOptions = TrackerOptions()) {
    private val tracks = ArrayList<Track>()
    private var frame = 0
    private var nextId = 1
    private val newScore = options.newTrackScore ?: options.highScore

    /**
     * Advance one frame. [imageWidth] / [imageHeight] (0: unknown) let lost tracks predicted
     * wholly outside the image be removed at once.
     */
    fun update(boxes: List<Rect>, scores: DoubleArray, classes: IntArray,
               imageWidth: Int = 0, imageHeight: Int = 0): TrackOutput {
        require(boxes.size == scores.size && scores.size == classes.size) { "one score and class per box" }
        frame++
        for (t in tracks) {
            t.det = -1
            if (t.state == LOST) { t.mean[6] = 0.0; t.mean[7] = 0.0 }
            predict(t)
        }
        val predicted = tracks.map { it.box() }
        val trackOfDet = IntArray(boxes.size) { -1 }
        val taken = BooleanArray(tracks.size)
        fun stage(rows: List<Int>, dets: List<Int>, pairs: (List<Int>, List<Int>) -> List<IntArray>) {
            if (rows.isEmpty() || dets.isEmpty()) return
            for (p in pairs(rows, dets)) {
                trackOfDet[dets[p[1]]] = rows[p[0]]
                taken[rows[p[0]]] = true
            }
        }
        fun byIou(threshold: Double) = { rows: List<Int>, dets: List<Int> ->
            greedyMatch(Array(rows.size) { i ->
                DoubleArray(dets.size) { j ->
                    if (options.perClass && tracks[rows[i]].cls != classes[dets[j]]) 0.0
                    else iou(predicted[rows[i]], boxes[dets[j]])
                }
            }, threshold)
        }
        val high = scores.indices.filter { scores[it] >= options.highScore }
        val low = scores.indices.filter { scores[it] >= options.lowScore && scores[it] < options.highScore }
        val confirmed = tracks.indices.filter { tracks[it].state != TENTATIVE }
        stage(confirmed, high, byIou(options.matchIou))
        val left = confirmed.filter { !taken[it] }
        val recent = left.filter { tracks[it].state == TRACKED }
        stage(recent, low, byIou(options.lowMatchIou))
        stage(left.filter { !taken[it] }, high.filter { trackOfDet[it] < 0 }) { r, d -> recover(r, d, predicted, boxes, classes) }
        val tentative = tracks.indices.filter { tracks[it].state == TENTATIVE }
        val highLeft = high.filter { trackOfDet[it] < 0 }
        stage(tentative, highLeft, byIou(options.tentativeMatchIou))

        val promote = ArrayList<Track>()
        for (d in boxes.indices) {
            val row = trackOfDet[d]
            if (row < 0) continue
            val t = tracks[row]
            correct(t, boxes[d])
            t.hits++; t.frame = frame; t.det = d; t.score = scores[d]; t.cls = classes[d]
            if (t.state == TENTATIVE && t.hits >= options.minHits) promote.add(t)
        }
        for (t in promote) confirm(t)
        for (d in boxes.indices) if (trackOfDet[d] >= 0 && tracks[trackOfDet[d]].state == LOST) tracks[trackOfDet[d]].state = TRACKED
        for (r in recent) if (!taken[r]) tracks[r].state = LOST
        val births = highLeft.filter { trackOfDet[it] < 0 && scores[it] >= newScore }
        val removed = remove(tentative.filter { !taken[it] }.toSet(), predicted, imageWidth, imageHeight)
        for (d in births) {
            val t = newTrack(boxes[d], classes[d], scores[d], frame)
            t.det = d
            tracks.add(t)
            if (frame == 1 || options.minHits <= 1) confirm(t)
        }
        val out = tracks.filter { it.state == TRACKED && it.det >= 0 }.sortedBy { it.det }
        return TrackOutput(out.map { it.id }.toIntArray(), out.map { it.det }.toIntArray(),
            out.map { it.box() }, tracks.filter { it.state == LOST }.map { it.id }.toIntArray(), removed)
    }

    private fun confirm(t: Track) {
        t.state = TRACKED
        t.id = nextId++
    }

    private fun recover(rows: List<Int>, dets: List<Int>, predicted: List<Rect>, boxes: List<Rect>,
                        classes: IntArray): List<IntArray> {
        val gate = options.recoverDistance
        if (gate <= 0) return emptyList()
        val closeness = Array(rows.size) { i ->
            val p = predicted[rows[i]]
            val diagT = Math.hypot(p.right - p.left, p.bottom - p.top)
            DoubleArray(dets.size) { j ->
                val b = boxes[dets[j]]
                if (options.perClass && tracks[rows[i]].cls != classes[dets[j]]) -1.0 else {
                    val diagD = Math.hypot(b.right - b.left, b.bottom - b.top)
                    val reach = gate * Math.max(diagT, diagD)
                    val dx = (p.left + p.right) / 2 - (b.left + b.right) / 2
                    val dy = (p.top + p.bottom) / 2 - (b.top + b.bottom) / 2
                    1.0 - Math.sqrt(dx * dx + dy * dy) / Math.max(reach, 1e-9)
                }
            }
        }
        return greedyMatch(closeness, 1e-9)
    }

    private fun remove(gone: Set<Int>, predicted: List<Rect>, width: Int, height: Int): IntArray {
        val removed = ArrayList<Int>()
        val keep = ArrayList<Track>()
        for ((i, t) in tracks.withIndex()) {
            val p = predicted[i]
            val outside = width > 0 && height > 0 && t.state == LOST &&
                (p.right < 0 || p.left > width || p.bottom < 0 || p.top > height)
            val stale = t.state == LOST && frame - t.frame > options.maxLostFrames
            if (i in gone || outside || stale) {
                if (t.state != TENTATIVE) removed.add(t.id)
            } else {
                keep.add(t)
            }
        }
        tracks.clear()
        tracks.addAll(keep)
        return removed.toIntArray()
    }
}
