package org.edgecnn.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Test
import java.nio.ByteBuffer
import java.nio.ByteOrder

class PreprocessTest {
    private val rgb = InputSpec(height = 1, width = 2, channels = 3, color = "RGB", mean = doubleArrayOf(0.0), std = doubleArrayOf(255.0))

    @Test
    fun grayMatchesOpenCvFixedPointWeights() {
        // cv2.cvtColor(..., COLOR_RGB2GRAY) of pure red, green, blue, white and black.
        assertEquals(76, grayOf(255, 0, 0))
        assertEquals(150, grayOf(0, 255, 0))
        assertEquals(29, grayOf(0, 0, 255))
        assertEquals(255, grayOf(255, 255, 255))
        assertEquals(0, grayOf(0, 0, 0))
    }

    @Test
    fun int8LutRoundsHalfToEvenAndClips() {
        val lut = InputLut.build(rgb, TensorType.INT8, Quant(1.0 / 255.0, -128))
        assertEquals(-128, lut.intValue(0, 0))
        assertEquals(127, lut.intValue(2, 255))
        // 2 / 2 = 1.0 -> 1; pixel 1 with scale 2/255 -> 0.5 -> rounds to even 0.
        val half = InputLut.build(rgb, TensorType.INT8, Quant(2.0 / 255.0, 0))
        assertEquals(0, half.intValue(0, 1))
        assertEquals(2, half.intValue(0, 5))   // 2.5 -> 2
        assertEquals(127, half.intValue(0, 255)) // 127.5 -> 128 -> clipped to 127
    }

    @Test
    fun writesRgbBgrAndGrayInTheModelsOrder() {
        val pixels = intArrayOf(0xFF0A141E.toInt(), 0xFFFF0000.toInt()) // (10, 20, 30) and pure red
        val lut = InputLut.build(rgb, TensorType.UINT8, Quant(1.0 / 255.0, 0))
        val out = ByteBuffer.allocateDirect(6)
        writeInput(pixels, 2, 1, "RGB", lut, out)
        val got = ByteArray(6); out.get(got)
        assertArrayEquals(byteArrayOf(10, 20, 30, 0xFF.toByte(), 0, 0), got)
        writeInput(pixels, 2, 1, "BGR", lut, out)
        out.get(got)
        assertArrayEquals(byteArrayOf(30, 20, 10, 0, 0, 0xFF.toByte()), got)
        val gray = InputSpec(height = 1, width = 2, channels = 1, color = "GRAY")
        val f = ByteBuffer.allocateDirect(8).order(ByteOrder.nativeOrder())
        writeInput(pixels, 2, 1, "GRAY", InputLut.build(gray, TensorType.FLOAT32, Quant.FLOAT), f)
        assertEquals(grayOf(10, 20, 30) / 255f, f.getFloat(0), 1e-7f)
        assertEquals(76 / 255f, f.getFloat(4), 1e-7f)
    }

    @Test
    fun stretchKeepsNoPadding() {
        val lb = Letterbox.fit(640, 480, 96, 96, "stretch")
        assertEquals(0.15, lb.scaleX, 1e-12)
        assertEquals(0.2, lb.scaleY, 1e-12)
        assertEquals(0.0, lb.padX + lb.padY, 0.0)
    }

    @Test
    fun softmaxOfLogitsAndSigmoidOnlyWhenNeeded() {
        val p = Classify.scores(floatArrayOf(1f, 1f, 1f, 1f), "none")
        for (v in p) assertEquals(0.25f, v, 1e-7f)
        val probs = floatArrayOf(0.2f, 0.9f)
        assertArrayEquals(probs, Classify.scores(probs, "sigmoid"), 0f)
        assertEquals(0.5f, Classify.scores(floatArrayOf(0f, 3f), "sigmoid")[0], 1e-7f)
        val top = Classify.topK(floatArrayOf(0.1f, 0.5f, 0.5f, 0.3f), listOf("a", "b", "c", "d"), 3, 0.2f)
        assertEquals(listOf("b", "c", "d"), top.map { it.label })
        assertEquals(1, Classify.topK(floatArrayOf(0.1f, 0.5f), listOf("a", "b"), 0).size)
    }
}
