package org.edgecnn.core

/*
 * `ultralytics_yolo`: one output of box centres, sizes and class scores per anchor (YOLO
 * v5/v8/11; docs/FORMAT.md, "Foreign detection layouts"); the Kotlin twin of
 * `edgecnn/runtime/decoders/ultralytics_yolo.py`.
 */

/** Registry entry of the layout: its fields `output`, `normalized` and `objectness`. */
object UltralyticsYolo : DecoderFactory {
    override val type: String = "ultralytics_yolo"
    private val KEYS = listOf("output", "normalized", "objectness")

    /** The layout's fields, checked as `UltralyticsYoloParams` checks them. */
    class Params(val output: Int, val normalized: Boolean, val objectness: Boolean)

    override fun parse(params: Map<String, Any?>): Params {
        val p = DecoderParams(type, params, KEYS)
        return Params(p.outputs(listOf("output" to 0))[0], p.bool("normalized", true), p.bool("objectness", false))
    }

    override fun create(spec: DecoderSpec, settings: DecodeSettings): Decoder {
        val p = parse(spec.params)
        return UltralyticsYoloDecoder(settings, p.output, p.normalized, p.objectness)
    }

    /** True for `[1, K, N]`, false for `[1, N, K]`, null when neither fits; `[1, K, K]` is channels first. */
    fun channelsFirst(shape: IntArray, channels: Int): Boolean? {
        if (shape.size != 3 || shape[0] != 1) return null
        if (shape[1] == channels) return true
        return if (shape[2] == channels) false else null
    }
}

/**
 * Decoder of Ultralytics' YOLO head, the twin of `UltralyticsYolo.decode` in Python.
 *
 * Per anchor: `cx, cy, w, h` (0..1 of the input when [normalized], else input pixels),
 * [objectness] if set, then one score per label. Steps: best class per anchor (ties to the
 * lower class id; with objectness a class scores `objectness * probability` in float32), keep
 * `score >= scoreThreshold`, corners `cx -+ w * 0.5` in float32 after scaling to pixels,
 * class-aware NMS as [nms], stop at `maxDetections`.
 *
 * The output's orientation comes from its shape, so [check] must run before [decode]
 * ([Decoders.checkOutputs] and [ModelCheck.tensors] do it).
 */
class UltralyticsYoloDecoder(
    val settings: DecodeSettings,
    val output: Int = 0,
    val normalized: Boolean = true,
    val objectness: Boolean = false
) : Decoder {
    override val labels: List<String> get() = settings.labels
    override val outputs: IntArray = intArrayOf(output)
    override val outputKeys: List<String> = listOf("output")

    /** Values per anchor: 4 box values, the objectness if any, one score per label. */
    val channels: Int = 4 + (if (objectness) 1 else 0) + settings.labels.size
    private val allowed: IntArray = settings.classes?.distinct()?.sorted()?.toIntArray() ?: IntArray(labels.size) { it }
    private var first: Boolean? = null
    private var anchors = 0

    override fun check(shapes: List<IntArray>) {
        val shape = shapes[0]
        val f = UltralyticsYolo.channelsFirst(shape, channels)
        if (f == null) {
            val what = if (objectness) "4 box values, objectness" else "4 box values"
            throw UnsupportedModelException("output $output has shape ${shapeText(shape)}, expected [1, $channels, N] or " +
                "[1, N, $channels] ($what and ${labels.size} class scores per anchor, YOLO layout " +
                "${UltralyticsYolo.type}${if (objectness) " with objectness" else ""}) for ${labels.size} labels.")
        }
        first = f
        anchors = if (f) shape[2] else shape[1]
    }

    override fun decode(tensors: List<OutputTensor>): RawDetections {
        val channelsFirst = first ?: throw IllegalStateException("check the output shape before decoding (Decoders.checkOutputs)")
        val t = tensors[0]
        val n = anchors
        val k = channels
        fun at(anchor: Int, channel: Int): Int = if (channelsFirst) channel * n + anchor else anchor * k + channel
        val scoreAt = if (objectness) 5 else 4
        val thr = settings.scoreThreshold.toFloat()
        val candAnchor = ArrayList<Int>()
        val candClass = ArrayList<Int>()
        val candScore = ArrayList<Float>()
        for (a in 0 until n) {
            var bestClass = -1
            var bestScore = Float.NEGATIVE_INFINITY
            if (objectness) {
                val obj = t.value(at(a, 4))
                for (c in allowed) {
                    val v = obj * t.value(at(a, scoreAt + c))
                    if (v > bestScore) { bestScore = v; bestClass = c }
                }
            } else if (t.integer) {
                // Raw comparison picks the same class: dequantization is monotonic.
                var bestRaw = Int.MIN_VALUE
                for (c in allowed) {
                    val q = t.raw(at(a, scoreAt + c))
                    if (q > bestRaw) { bestRaw = q; bestClass = c }
                }
                if (bestClass >= 0) bestScore = t.valueOfRaw(bestRaw)
            } else {
                for (c in allowed) {
                    val v = t.value(at(a, scoreAt + c))
                    if (v > bestScore) { bestScore = v; bestClass = c }
                }
            }
            if (bestClass >= 0 && bestScore >= thr) {
                candAnchor.add(a); candClass.add(bestClass); candScore.add(bestScore)
            }
        }
        val w = if (normalized) settings.inputWidth.toFloat() else 1f
        val h = if (normalized) settings.inputHeight.toFloat() else 1f
        val xyxy = FloatArray(candAnchor.size * 4)
        for (i in candAnchor.indices) {
            val a = candAnchor[i]
            // The float32 operations of `xywh_to_xyxy`, in its order.
            val cx = t.value(at(a, 0)) * w
            val cy = t.value(at(a, 1)) * h
            val halfW = t.value(at(a, 2)) * w * 0.5f
            val halfH = t.value(at(a, 3)) * h * 0.5f
            xyxy[i * 4] = cx - halfW
            xyxy[i * 4 + 1] = cy - halfH
            xyxy[i * 4 + 2] = cx + halfW
            xyxy[i * 4 + 3] = cy + halfH
        }
        return nmsDetections(xyxy, candScore, candClass, candAnchor, settings)
    }
}
