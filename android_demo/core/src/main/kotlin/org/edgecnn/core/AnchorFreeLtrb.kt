package org.edgecnn.core

/*
 * `anchor_free_ltrb`: edgecnn's own head, ltrb distances per anchor point plus class scores
 * (docs/FORMAT.md, "Detection head outputs"); the Kotlin twin of
 * `edgecnn/runtime/decoders/anchor_free_ltrb.py`.
 */

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

/** Registry entry of the layout: its fields `strides`, `box_output` and `score_output`. */
object AnchorFreeLtrb : DecoderFactory {
    override val type: String = "anchor_free_ltrb"
    private val KEYS = listOf("strides", "box_output", "score_output")

    /** The layout's fields, checked as `decoders/anchor_free_ltrb.py: Params` checks them. */
    class Params(val strides: IntArray, val boxOutput: Int, val scoreOutput: Int)

    override fun parse(params: Map<String, Any?>): Params {
        val p = DecoderParams(type, params, KEYS)
        val strides = p.ints("strides", intArrayOf(8, 16, 32))
        val ascending = (1 until strides.size).all { strides[it] > strides[it - 1] }
        if (strides.size > 8 || strides.any { it < 1 || it > 1024 } || !ascending) {
            throw MetadataException("metadata 'decoder.strides' must be 1..8 ascending strides in 1..1024 without repeats, got ${strides.toList()}")
        }
        val box = p.int("box_output", 0)
        val score = p.int("score_output", 1)
        if (box !in 0..15 || score !in 0..15 || box == score) {
            throw MetadataException("metadata decoder outputs box_output, score_output must be different positions in 0..15, got [$box, $score]")
        }
        return Params(strides, box, score)
    }

    override fun create(spec: DecoderSpec, settings: DecodeSettings): Decoder {
        val p = parse(spec.params)
        return AnchorFreeLtrbDecoder(settings, p.strides, p.boxOutput, p.scoreOutput)
    }
}

/**
 * Decoder of the `anchor_free_ltrb` head, the twin of `decode_head` in Python.
 *
 * Steps: best class per anchor (ties to the lower class id), keep `score >= scoreThreshold`,
 * decode `ltrb * stride` around the anchor, greedy class-aware NMS (a box is dropped when a kept
 * box of the same class overlaps it with IoU `> iouThreshold`), stop at `maxDetections`.
 *
 * Example:
 * ```
 * val decoder = Decoders.create(meta)
 * val dets = decoder.detect(decoder.outputs.map { tensorOf(it) }, letterbox)
 * ```
 */
class AnchorFreeLtrbDecoder(
    val settings: DecodeSettings,
    val strides: IntArray,
    val boxOutput: Int = 0,
    val scoreOutput: Int = 1
) : Decoder {
    override val labels: List<String> get() = settings.labels
    override val outputs: IntArray = intArrayOf(boxOutput, scoreOutput)
    override val outputKeys: List<String> = listOf("box_output", "score_output")
    val anchors: AnchorGrid = AnchorGrid.generate(settings.inputHeight, settings.inputWidth, strides)

    override fun check(shapes: List<IntArray>) {
        val n = anchors.size
        val expected = listOf("boxes" to intArrayOf(1, n, 4), "scores" to intArrayOf(1, n, labels.size))
        for ((i, pair) in expected.withIndex()) {
            if (!shapes[i].contentEquals(pair.second)) {
                throw UnsupportedModelException("${pair.first} output (decoder.${outputKeys[i]} = ${outputs[i]}) has shape " +
                    "${shapeText(shapes[i])}, expected ${shapeText(pair.second)} for input " +
                    "${settings.inputHeight}x${settings.inputWidth}, strides ${shapeText(strides)} and ${labels.size} labels.")
            }
        }
    }

    override fun decode(tensors: List<OutputTensor>): RawDetections = decode(tensors[0], tensors[1])

    /** Head outputs (`[1, N, 4]` and `[1, N, C]`, flattened) -> detections in model-input pixels. */
    fun decode(boxes: OutputTensor, scores: OutputTensor): RawDetections {
        val n = anchors.size
        val c = labels.size
        val allowed = settings.classes ?: IntArray(c) { it }
        val thr = settings.scoreThreshold.toFloat()
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
        return nmsDetections(xyxy, candScore, candClass, candAnchor, settings)
    }
}
