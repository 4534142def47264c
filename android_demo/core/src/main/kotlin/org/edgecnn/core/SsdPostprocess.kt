package org.edgecnn.core

/*
 * `ssd_postprocess`: the four outputs of TFLite's `TFLite_Detection_PostProcess` op (TF Object
 * Detection API SSDs, MediaPipe / Model Maker EfficientDet-Lite; docs/FORMAT.md, "Foreign
 * detection layouts"); the Kotlin twin of `edgecnn/runtime/decoders/ssd_postprocess.py`.
 */

/** Registry entry of the layout: four output positions and `class_offset`. */
object SsdPostprocess : DecoderFactory {
    override val type: String = "ssd_postprocess"
    private val OUTPUTS = listOf("box_output" to 0, "class_output" to 1, "score_output" to 2, "count_output" to 3)
    private val KEYS = OUTPUTS.map { it.first } + "class_offset"

    /** The layout's fields, checked as `SsdPostprocessParams` checks them. */
    class Params(val outputs: IntArray, val classOffset: Int)

    override fun parse(params: Map<String, Any?>): Params {
        val p = DecoderParams(type, params, KEYS)
        return Params(p.outputs(OUTPUTS), p.int("class_offset", 0, -1000, 1000))
    }

    override fun create(spec: DecoderSpec, settings: DecodeSettings): Decoder {
        val p = parse(spec.params)
        return SsdPostprocessDecoder(settings, p.outputs, p.classOffset)
    }
}

/**
 * Decoder of the `TFLite_Detection_PostProcess` outputs, read in [outputs] order: boxes
 * `[1, N, 4]` (`ymin, xmin, ymax, xmax` in 0..1), classes `[1, N]` (floats, plus
 * [classOffset]), scores `[1, N]`, count `[1]`. The first `count` rows go through
 * [selectRows]; no NMS (the op did it).
 */
class SsdPostprocessDecoder(
    val settings: DecodeSettings,
    /** Positions of boxes, classes, scores and count in the interpreter's outputs. */
    override val outputs: IntArray = intArrayOf(0, 1, 2, 3),
    val classOffset: Int = 0
) : Decoder {
    override val labels: List<String> get() = settings.labels
    override val outputKeys: List<String> = listOf("box_output", "class_output", "score_output", "count_output")
    private var rows = -1

    override fun check(shapes: List<IntArray>) {
        val b = shapes[0]
        val n = if (b.size == 3) b[1] else -1
        val row = intArrayOf(1, n)
        val fits = n >= 0 && b.contentEquals(intArrayOf(1, n, 4)) && shapes[1].contentEquals(row) &&
            shapes[2].contentEquals(row) && (shapes[3].contentEquals(intArrayOf(1)) || shapes[3].isEmpty())
        if (!fits) {
            val roles = listOf("boxes", "classes", "scores", "count")
            val got = roles.indices.joinToString(", ") { "${roles[it]} (output ${outputs[it]}) ${shapeText(shapes[it])}" }
            throw UnsupportedModelException("the TFLite_Detection_PostProcess outputs do not fit: $got; expected boxes " +
                "[1, N, 4], classes [1, N], scores [1, N], count [1] (${SsdPostprocess.type}). Set box_output, " +
                "class_output, score_output and count_output to the positions of those outputs.")
        }
        rows = n
    }

    override fun decode(tensors: List<OutputTensor>): RawDetections {
        if (rows < 0) throw IllegalStateException("check the output shapes before decoding (Decoders.checkOutputs)")
        val (box, cls, score, count) = tensors
        val c = Math.rint(count.value(0).toDouble())
        // NaN counts no rows; the op never writes more rows than it has.
        val n = if (c.isNaN()) 0 else Math.max(0.0, Math.min(c, rows.toDouble())).toInt()
        val w = settings.inputWidth.toFloat()
        val h = settings.inputHeight.toFloat()
        val offset = classOffset.toFloat()
        val xyxy = FloatArray(n * 4)
        for (r in 0 until n) {
            xyxy[r * 4] = box.value(r * 4 + 1) * w
            xyxy[r * 4 + 1] = box.value(r * 4) * h
            xyxy[r * 4 + 2] = box.value(r * 4 + 3) * w
            xyxy[r * 4 + 3] = box.value(r * 4 + 2) * h
        }
        return selectRows(xyxy, FloatArray(n) { score.value(it) }, FloatArray(n) { cls.value(it) + offset },
            labels.size, settings.scoreThreshold, settings.maxDetections, settings.classes)
    }
}
