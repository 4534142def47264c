package org.edgecnn.core

import org.edgecnn.core.Fixtures.ints
import org.edgecnn.core.Fixtures.list
import org.edgecnn.core.Fixtures.num
import org.edgecnn.core.Fixtures.obj
import org.edgecnn.core.Fixtures.objects
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Test

/**
 * The Kotlin tracker replays `tests/golden/track_golden.json` (written by the Python tracker,
 * benchmarks/make_track_golden.py): same IDs, detections, lost and removed tracks per frame,
 * and filtered boxes within the file's tolerance.
 */
class TrackerTest {
    private val golden = Fixtures.trackGolden

    private fun options(): TrackerOptions {
        val o = obj(golden["options"])
        return TrackerOptions(num(o["high_score"]), num(o["low_score"]), o["new_track_score"] as Double?,
            num(o["match_iou"]), num(o["low_match_iou"]), num(o["tentative_match_iou"]),
            num(o["max_lost_frames"]).toInt(), num(o["min_hits"]).toInt(), num(o["recover_distance"]),
            o["per_class"] as Boolean)
    }

    @Test
    fun tracksMatchPythonFrameByFrame() {
        assertEquals("edgecnn.track_golden/1", golden["schema"])
        val size = ints(golden["image_size"])
        val tol = num(obj(golden["tolerances"])["box"])
        val tracker = ByteTracker(options())
        var ids = 0
        for ((f, frame) in objects(golden["frames"]).withIndex()) {
            val flat = list(frame["boxes"]).map { it as Double }
            val boxes = (0 until flat.size / 4).map { Rect(flat[4 * it], flat[4 * it + 1], flat[4 * it + 2], flat[4 * it + 3]) }
            val scores = list(frame["scores"]).map { it as Double }.toDoubleArray()
            val out = tracker.update(boxes, scores, ints(frame["classes"]), size[0], size[1])
            assertArrayEquals("frame $f ids", ints(frame["ids"]), out.ids)
            assertArrayEquals("frame $f det_index", ints(frame["det_index"]), out.detIndex)
            assertArrayEquals("frame $f lost", ints(frame["lost"]), out.lost)
            assertArrayEquals("frame $f removed", ints(frame["removed"]), out.removed)
            val want = list(frame["filtered"]).map { it as Double }
            for ((i, b) in out.boxes.withIndex()) {
                val got = doubleArrayOf(b.left, b.top, b.right, b.bottom)
                for (k in 0 until 4) {
                    assertEquals("frame $f box $i", want[4 * i + k], got[k], tol * Math.max(1.0, Math.abs(want[4 * i + k])))
                }
            }
            ids += out.ids.size
        }
        assertTrue("the golden sequence tracks something", ids > 100)
    }

    @Test
    fun greedyMatchTakesBestPairsFirst() {
        val pairs = greedyMatch(arrayOf(doubleArrayOf(0.9, 0.8), doubleArrayOf(0.85, 0.1)), 0.2)
        assertEquals(listOf(listOf(0, 0)), pairs.map { it.toList() })
    }

    @Test
    fun differentClassesNeverMatch() {
        val tracker = ByteTracker()
        val box = listOf(Rect(10.0, 10.0, 50.0, 50.0))
        tracker.update(box, doubleArrayOf(0.9), intArrayOf(0))
        assertEquals(0, tracker.update(box, doubleArrayOf(0.9), intArrayOf(1)).ids.size)
        assertArrayEquals(intArrayOf(2), tracker.update(box, doubleArrayOf(0.9), intArrayOf(1)).ids)
    }
}
