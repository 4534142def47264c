package org.edgecnn.core

import java.nio.ByteBuffer
import java.nio.ByteOrder

/**
 * One model output as a flat sequence of elements: float32, or raw int8 / uint8 with their
 * quantization. Integer outputs are compared in the raw domain and only the few surviving
 * anchors are dequantized, as the Python runtime does.
 */
class OutputTensor private constructor(
    private val floats: FloatArray?,
    private val buffer: ByteBuffer?,
    private val bytes: ByteArray?,
    val type: TensorType,
    val quant: Quant
) {
    val integer: Boolean get() = type != TensorType.FLOAT32

    /** Raw integer element (int8 as -128..127, uint8 as 0..255). */
    fun raw(i: Int): Int {
        val v = if (bytes != null) bytes[i].toInt() else buffer!!.get(i).toInt()
        return if (type == TensorType.UINT8) v and 0xFF else v
    }

    /** float32 value of an element (dequantized for integer outputs). */
    fun value(i: Int): Float {
        if (floats != null) return floats[i]
        if (type == TensorType.FLOAT32) return buffer!!.getFloat(i * 4)
        val q = raw(i)
        return if (quant.quantized) quant.dequantize(q) else q.toFloat()
    }

    fun valueOfRaw(q: Int): Float = if (quant.quantized) quant.dequantize(q) else q.toFloat()

    companion object {
        fun of(values: FloatArray): OutputTensor = OutputTensor(values, null, null, TensorType.FLOAT32, Quant.FLOAT)

        /** Raw int8 values with their quantization (as the golden file stores them). */
        fun int8(values: ByteArray, quant: Quant): OutputTensor = OutputTensor(null, null, values, TensorType.INT8, quant)

        fun uint8(values: ByteArray, quant: Quant): OutputTensor = OutputTensor(null, null, values, TensorType.UINT8, quant)

        /** An interpreter output buffer (read without copying; float32 in native byte order). */
        fun of(buffer: ByteBuffer, type: TensorType, quant: Quant): OutputTensor =
            OutputTensor(null, buffer.duplicate().order(ByteOrder.nativeOrder()), null, type, quant)
    }
}

/** Detections in model-input pixels, best first (ties: lower anchor index first). */
class RawDetections(
    /** `x1, y1, x2, y2` per detection, float32, not clipped. */
    val boxes: FloatArray,
    val scores: FloatArray,
    val classes: IntArray,
    val anchors: IntArray
) {
    val size: Int get() = scores.size
}

/**
 * Greedy class-aware NMS over `xyxy` boxes, the definition of `nms_reference` in the Python
 * runtime: visit by descending score (ties: lower index first), drop boxes that a kept box of
 * the same class overlaps with IoU `> iouThreshold`, stop after [maxDetections].
 *
 * @return indices of the kept boxes in the order they were kept.
 */
fun nms(xyxy: FloatArray, scores: List<Float>, classes: List<Int>, iouThreshold: Double, maxDetections: Int): IntArray {
    val n = scores.size
    // List.sortedWith is stable, so equal scores keep their (anchor) order.
    val order = (0 until n).sortedWith(compareByDescending<Int> { scores[it] })
    val suppressed = BooleanArray(n)
    val keep = ArrayList<Int>()
    for (i in order) {
        if (keep.size >= maxDetections) break
        if (suppressed[i]) continue
        keep.add(i)
        val x1 = xyxy[i * 4].toDouble()
        val y1 = xyxy[i * 4 + 1].toDouble()
        val x2 = xyxy[i * 4 + 2].toDouble()
        val y2 = xyxy[i * 4 + 3].toDouble()
        val area = (x2 - x1) * (y2 - y1)
        for (j in 0 until n) {
            if (suppressed[j] || classes[j] != classes[i]) continue
            val bx1 = xyxy[j * 4].toDouble()
            val by1 = xyxy[j * 4 + 1].toDouble()
            val bx2 = xyxy[j * 4 + 2].toDouble()
            val by2 = xyxy[j * 4 + 3].toDouble()
            val iw = Math.min(x2, bx2) - Math.max(x1, bx1)
            val ih = Math.min(y2, by2) - Math.max(y1, by1)
            val inter = Math.max(iw, 0.0) * Math.max(ih, 0.0)
            val union = area + (bx2 - bx1) * (by2 - by1) - inter
            val iou = if (union > 0) inter / union else 0.0
            if (iou > iouThreshold) suppressed[j] = true
        }
    }
    return IntArray(keep.size) { keep[it] }
}

/**
 * Candidates (boxes `x1, y1, x2, y2` in model-input pixels, best class, score, anchor) ->
 * the detections class-aware [nms] keeps under [settings]' IoU threshold and cap, best first.
 */
fun nmsDetections(xyxy: FloatArray, scores: List<Float>, classes: List<Int>, anchors: List<Int>,
                  settings: DecodeSettings): RawDetections {
    val keep = nms(xyxy, scores, classes, settings.iouThreshold, settings.maxDetections)
    val out = FloatArray(keep.size * 4)
    for (j in keep.indices) System.arraycopy(xyxy, keep[j] * 4, out, j * 4, 4)
    return RawDetections(out, FloatArray(keep.size) { scores[keep[it]] }, IntArray(keep.size) { classes[keep[it]] },
        IntArray(keep.size) { anchors[keep[it]] })
}

/**
 * Detections a model selected itself (end-to-end YOLO, the SSD post-processing op), the twin
 * of `select_rows` in `edgecnn/runtime/postprocess.py`: classes rounded half to even (NaN and
 * infinities drop the row), rows with `score >= scoreThreshold` and a class among the labels
 * (and in [allowed], if given), by descending score (ties: lower row first), at most
 * [maxDetections]. No NMS.
 *
 * @param boxes `x1, y1, x2, y2` per row in model-input pixels.
 * @param classes class numbers as the model wrote them.
 */
fun selectRows(boxes: FloatArray, scores: FloatArray, classes: FloatArray, numClasses: Int,
               scoreThreshold: Double, maxDetections: Int, allowed: IntArray? = null): RawDetections {
    val thr = scoreThreshold.toFloat()
    val cls = IntArray(scores.size)
    val rows = ArrayList<Int>()
    for (i in scores.indices) {
        val c = classes[i].toDouble()
        val r = if (c.isNaN() || c.isInfinite()) -1.0 else Math.rint(c)
        if (!(scores[i] >= thr) || r < 0.0 || r >= numClasses) continue
        cls[i] = r.toInt()
        if (allowed == null || cls[i] in allowed) rows.add(i)
    }
    val keep = rows.sortedWith(compareByDescending<Int> { scores[it] }).take(maxDetections)
    val out = FloatArray(keep.size * 4)
    for (j in keep.indices) System.arraycopy(boxes, keep[j] * 4, out, j * 4, 4)
    return RawDetections(out, FloatArray(keep.size) { scores[keep[it]] }, IntArray(keep.size) { cls[keep[it]] },
        IntArray(keep.size) { keep[it] })
}
