package org.edgecnn.core

import java.nio.ByteBuffer
import java.nio.ByteOrder

/**
 * Anchor points of the `anchor_free_ltrb` head in the order docs/FORMAT.md fixes: strides
 * ascending, then rows, then columns; centre `((x + 0.5) s, (y + 0.5) s)` in model-input pixels.
 */
class AnchorGrid(val cx: FloatArray, val cy: FloatArray, val stride: FloatArray) {
    val size: Int get() = cx.size

    companion object {
        /** Cells along one side; rounds up like a 'same'-padded stride-2 conv stack. */
        fun gridSize(size: Int, stride: Int): Int = (size + stride - 1) / stride

        fun count(height: Int, width: Int, strides: IntArray): Int {
            var n = 0
            for (s in strides) n += gridSize(height, s) * gridSize(width, s)
            return n
        }

        fun generate(height: Int, width: Int, strides: IntArray): AnchorGrid {
            if (height <= 0 || width <= 0 || strides.isEmpty() || strides.any { it <= 0 }) {
                throw IllegalArgumentException("invalid anchor grid: input ${height}x$width, strides ${strides.toList()}")
            }
            for (i in 1 until strides.size) {
                if (strides[i] < strides[i - 1]) throw IllegalArgumentException("decoder strides must be ascending, got ${strides.toList()}")
            }
            val n = count(height, width, strides)
            val cx = FloatArray(n)
            val cy = FloatArray(n)
            val st = FloatArray(n)
            var k = 0
            for (s in strides) {
                val sf = s.toFloat()
                for (y in 0 until gridSize(height, s)) {
                    for (x in 0 until gridSize(width, s)) {
                        cx[k] = (x.toFloat() + 0.5f) * sf
                        cy[k] = (y.toFloat() + 0.5f) * sf
                        st[k] = sf
                        k++
                    }
                }
            }
            return AnchorGrid(cx, cy, st)
        }
    }
}

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
 * Post-processing of the `anchor_free_ltrb` detection head, the Kotlin twin of
 * `edgecnn/runtime/postprocess.py: decode_head` + `to_image`.
 *
 * Steps: best class per anchor (ties to the lower class id), keep `score >= scoreThreshold`,
 * decode `ltrb * stride` around the anchor, greedy class-aware NMS (a box is dropped when a kept
 * box of the same class overlaps it with IoU `> iouThreshold`), stop at `maxDetections`, map
 * through the letterbox and clip to the image.
 *
 * Example:
 * ```
 * val decoder = DetectionDecoder.fromMetadata(meta)
 * val dets = decoder.detect(OutputTensor.of(boxBuf, TensorType.INT8, boxQuant),
 *                           OutputTensor.of(scoreBuf, TensorType.INT8, scoreQuant), letterbox)
 * ```
 */
class DetectionDecoder(
    val inputHeight: Int,
    val inputWidth: Int,
    val strides: IntArray,
    val labels: List<String>,
    val scoreThreshold: Double,
    val iouThreshold: Double,
    val maxDetections: Int,
    /** Optional allowed class ids; an anchor's best class is then taken among these only. */
    val classes: IntArray? = null
) {
    val anchors: AnchorGrid = AnchorGrid.generate(inputHeight, inputWidth, strides)
    val numClasses: Int get() = labels.size

    init {
        require(scoreThreshold in 0.0..1.0 && iouThreshold in 0.0..1.0) {
            "thresholds must be within 0..1 (score $scoreThreshold, iou $iouThreshold)"
        }
        require(maxDetections >= 1) { "max_detections must be >= 1, got $maxDetections" }
    }

    companion object {
        fun fromMetadata(meta: Metadata): DetectionDecoder {
            val dec = meta.decoder ?: throw MetadataException("detection metadata has no 'decoder' section")
            if (dec.type != "anchor_free_ltrb") throw MetadataException("unsupported decoder '${dec.type}' (this app decodes anchor_free_ltrb)")
            return DetectionDecoder(meta.input.height, meta.input.width, dec.strides, meta.labels,
                dec.scoreThreshold, dec.iouThreshold, dec.maxDetections)
        }
    }

    /** Head outputs -> detections in original-image pixels, best first. */
    fun detect(boxes: OutputTensor, scores: OutputTensor, letterbox: Letterbox): List<Detection> =
        toImage(decode(boxes, scores), letterbox)

    /** Head outputs (`[1, N, 4]` and `[1, N, C]`, flattened) -> detections in model-input pixels. */
    fun decode(boxes: OutputTensor, scores: OutputTensor): RawDetections {
        val n = anchors.size
        val c = numClasses
        val allowed = classes ?: IntArray(c) { it }
        val thr = scoreThreshold.toFloat()
        val candAnchor = ArrayList<Int>()
        val candClass = ArrayList<Int>()
        val candScore = ArrayList<Float>()
        for (a in 0 until n) {
            val base = a * c
            var bestClass = -1
            var bestScore: Float
            if (scores.integer) {
                var bestRaw = Int.MIN_VALUE
                for (k in allowed) {
                    val q = scores.raw(base + k)
                    if (q > bestRaw) { bestRaw = q; bestClass = k }
                }
                bestScore = scores.valueOfRaw(bestRaw)
            } else {
                bestScore = Float.NEGATIVE_INFINITY
                for (k in allowed) {
                    val v = scores.value(base + k)
                    if (v > bestScore) { bestScore = v; bestClass = k }
                }
            }
            if (bestClass >= 0 && bestScore >= thr) {
                candAnchor.add(a); candClass.add(bestClass); candScore.add(bestScore)
            }
        }
        val m = candAnchor.size
        val xyxy = FloatArray(m * 4)
        for (i in 0 until m) {
            val a = candAnchor[i]
            val s = anchors.stride[a]
            val l = boxes.value(a * 4) * s
            val t = boxes.value(a * 4 + 1) * s
            val r = boxes.value(a * 4 + 2) * s
            val b = boxes.value(a * 4 + 3) * s
            xyxy[i * 4] = anchors.cx[a] - l
            xyxy[i * 4 + 1] = anchors.cy[a] - t
            xyxy[i * 4 + 2] = anchors.cx[a] + r
            xyxy[i * 4 + 3] = anchors.cy[a] + b
        }
        val keep = nms(xyxy, candScore, candClass, iouThreshold, maxDetections)
        val outBoxes = FloatArray(keep.size * 4)
        for (j in keep.indices) System.arraycopy(xyxy, keep[j] * 4, outBoxes, j * 4, 4)
        return RawDetections(outBoxes, FloatArray(keep.size) { candScore[keep[it]] },
            IntArray(keep.size) { candClass[keep[it]] }, IntArray(keep.size) { candAnchor[keep[it]] })
    }

    /** Model-input boxes -> original-image [Detection]s through the letterbox. */
    fun toImage(raw: RawDetections, letterbox: Letterbox): List<Detection> {
        val out = ArrayList<Detection>(raw.size)
        for (i in 0 until raw.size) {
            val b = raw.boxes
            val rect = Rect(letterbox.toImageX(b[i * 4].toDouble()), letterbox.toImageY(b[i * 4 + 1].toDouble()),
                letterbox.toImageX(b[i * 4 + 2].toDouble()), letterbox.toImageY(b[i * 4 + 3].toDouble()))
            val cls = raw.classes[i]
            out.add(Detection(rect, Category(cls, labels[cls], raw.scores[i])))
        }
        return out
    }
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
