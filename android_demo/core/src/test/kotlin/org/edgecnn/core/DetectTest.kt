package org.edgecnn.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test

class DetectTest {
    @Test
    fun anchorsFollowTheFormatOrder() {
        val g = AnchorGrid.generate(64, 64, intArrayOf(8, 16, 32))
        assertEquals(64 + 16 + 4, g.size)
        assertEquals(4f, g.cx[0], 0f); assertEquals(4f, g.cy[0], 0f)
        assertEquals(12f, g.cx[1], 0f); assertEquals(4f, g.cy[1], 0f) // row-major: x moves first
        assertEquals(4f, g.cx[8], 0f); assertEquals(12f, g.cy[8], 0f)
        assertEquals(8f, g.cx[64], 0f); assertEquals(16f, g.stride[64], 0f)
        assertEquals(48f, g.cx[83], 0f); assertEquals(48f, g.cy[83], 0f); assertEquals(32f, g.stride[83], 0f)
    }

    @Test
    fun gridRoundsUpForSizesNotDivisibleByTheStride() {
        assertEquals(3, AnchorGrid.gridSize(20, 8))
        assertEquals(3 * 2 + 2 * 1, AnchorGrid.count(20, 12, intArrayOf(8, 16)))
    }

    private fun boxes(vararg b: Float) = b

    @Test
    fun nmsIsClassAwareAndStableOnTies() {
        val xyxy = boxes(0f, 0f, 10f, 10f, 1f, 1f, 11f, 11f, 0f, 0f, 10f, 10f, 50f, 50f, 60f, 60f)
        // Box 1 overlaps box 0 (same class) and is suppressed; box 2 is identical but class 1.
        val keep = nms(xyxy, listOf(0.9f, 0.8f, 0.7f, 0.9f), listOf(0, 0, 1, 0), 0.45, 100)
        assertArrayEquals(intArrayOf(0, 3, 2), keep)
        assertArrayEquals(intArrayOf(0), nms(xyxy, listOf(0.9f, 0.8f, 0.7f, 0.9f), listOf(0, 0, 1, 0), 0.45, 1))
    }

    @Test
    fun nmsKeepsOverlapExactlyAtTheThreshold() {
        // IoU = 50 / 150 = 1/3: dropped only when strictly above the threshold.
        val xyxy = boxes(0f, 0f, 10f, 10f, 5f, 0f, 15f, 10f)
        assertEquals(2, nms(xyxy, listOf(0.9f, 0.8f), listOf(0, 0), 1.0 / 3.0, 10).size)
        assertEquals(1, nms(xyxy, listOf(0.9f, 0.8f), listOf(0, 0), 0.33, 10).size)
    }

    @Test
    fun decodeAppliesStrideThresholdAndLetterbox() {
        val labels = listOf("a", "b")
        val dec = AnchorFreeLtrbDecoder(DecodeSettings(16, 16, labels, 0.5, 0.45, 10), intArrayOf(8))
        assertEquals(4, dec.anchors.size)
        val ltrb = FloatArray(16) { 0.5f }
        val scores = floatArrayOf(0.1f, 0.2f, 0.6f, 0.6f, 0.49f, 0.3f, 0.0f, 0.9f)
        val raw = dec.decode(OutputTensor.of(ltrb), OutputTensor.of(scores))
        // Anchor 3 (0.9, class 1) first; anchor 1's tie goes to the lower class id 0.
        assertArrayEquals(intArrayOf(3, 1), raw.anchors)
        assertArrayEquals(intArrayOf(1, 0), raw.classes)
        assertArrayEquals(floatArrayOf(8f, 8f, 16f, 16f, 8f, 0f, 16f, 8f), raw.boxes, 0f)
        // Letterbox of a 32x16 image into 16x16: scale 0.5, pad_y 4; boxes are clipped to the image.
        val lb = Letterbox.fit(32, 16, 16, 16, "letterbox")
        assertEquals(4.0, lb.padY, 0.0)
        val dets = toImage(raw, lb, labels)
        assertEquals("b", dets[0].category.label)
        assertEquals(16.0, dets[0].box.left, 1e-9)
        assertEquals(8.0, dets[0].box.top, 1e-9)
        assertEquals(32.0, dets[0].box.right, 1e-9)
        assertEquals(16.0, dets[0].box.bottom, 1e-9) // (16 - 4) / 0.5 = 24, clipped to 16
        assertEquals(0.0, dets[1].box.top, 1e-9)     // (0 - 4) / 0.5 < 0, clipped to 0
    }

    @Test
    fun quantizedScoresCompareInTheRawDomain() {
        val q = Quant(1.0 / 256.0, -128)
        val dec = AnchorFreeLtrbDecoder(DecodeSettings(8, 8, listOf("a"), 0.25, 0.45, 10), intArrayOf(8))
        // raw -64 -> (-64 + 128) / 256 = 0.25 exactly: kept (>=); -65 -> 0.2461: dropped.
        val keep = dec.decode(OutputTensor.of(FloatArray(4)), OutputTensor.int8(byteArrayOf(-64), q))
        assertEquals(1, keep.size)
        assertEquals(0.25f, keep.scores[0], 0f)
        val drop = dec.decode(OutputTensor.of(FloatArray(4)), OutputTensor.int8(byteArrayOf(-65), q))
        assertEquals(0, drop.size)
    }

    @Test
    fun equalRawScoresGoToTheLowerClassId() {
        val q = Quant(1.0 / 256.0, -128)
        val dec = AnchorFreeLtrbDecoder(DecodeSettings(8, 8, listOf("a", "b", "c"), 0.25, 0.45, 10), intArrayOf(8))
        val raw = dec.decode(OutputTensor.of(FloatArray(4)), OutputTensor.int8(byteArrayOf(-10, 50, 50), q))
        assertArrayEquals(intArrayOf(1), raw.classes)
        val floats = dec.decode(OutputTensor.of(FloatArray(4)), OutputTensor.of(floatArrayOf(0.1f, 0.7f, 0.7f)))
        assertArrayEquals(intArrayOf(1), floats.classes)
    }

    @Test
    fun registryBuildsTheDecoderOfTheMetadata() {
        val meta = Metadata.fromJson(Json.parse(Fixtures.metadataJson()))
        val dec = Decoders.create(meta)
        assertTrue(dec is AnchorFreeLtrbDecoder)
        assertArrayEquals(intArrayOf(1, 0), dec.outputs) // box_output 1, score_output 0
        assertEquals(listOf("anchor_free_ltrb", "ssd_postprocess", "ultralytics_end2end", "ultralytics_yolo"), Decoders.types)
        // 64x48 input, strides 8/16/32: 48 + 12 + 4 anchors (rounded up per side).
        assertEquals(64, (dec as AnchorFreeLtrbDecoder).anchors.size)
    }

    @Test
    fun decoderSaysWhichShapesItExpected() {
        val dec = Decoders.create(Metadata.fromJson(Json.parse(Fixtures.metadataJson())))
        try {
            dec.check(listOf(intArrayOf(1, 64, 4), intArrayOf(1, 63, 2)))
            fail("a wrong score shape must be refused")
        } catch (e: UnsupportedModelException) {
            assertTrue(e.message, e.message!!.contains("scores output (decoder.score_output = 0) has shape [1, 63, 2], expected [1, 64, 2]"))
        }
    }

    @Test
    fun iouOfRects() {
        val a = Rect(0.0, 0.0, 10.0, 10.0)
        assertEquals(1.0, a.iou(a), 0.0)
        assertEquals(0.0, a.iou(Rect(20.0, 20.0, 30.0, 30.0)), 0.0)
        assertEquals(0.0, Rect(1.0, 1.0, 1.0, 1.0).iou(Rect(1.0, 1.0, 1.0, 1.0)), 0.0)
        assertTrue(a.iou(Rect(0.0, 0.0, 10.0, 9.9)) > 0.98)
    }
}
