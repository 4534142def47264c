package org.edgecnn.core

/*
 * `ultralytics_end2end`: detections already selected by the model (YOLOv10, YOLO26;
 * docs/FORMAT.md, "Foreign detection layouts"); the Kotlin twin of
 * `edgecnn/runtime/decoders/ultralytics_end2end.py`.
 */

/** Registry entry of the layout: its fields `output` and `normalized`. */
object UltralyticsEnd2end : DecoderFactory {
    override val type: String = "ultralytics_end2end"
    private val KEYS = listOf("output", "normalized")

    /** The layout's fields, checked as `UltralyticsEnd2endParams` checks them. */
    class Params(val output: Int, val normalized: Boolean)

    override fun parse(params: Map<String, Any?>): Params {
        val p = DecoderParams(type, params, KEYS)
        return Params(p.outputs(listOf("output" to 0))[0], p.bool("normalized", false))
    }

    override fun create(spec: DecoderSpec, settings: DecodeSettings): Decoder {
        val p = parse(spec.params)
        return UltralyticsEnd2endDecoder(settings, p.output, p.normalized)
    }
}

/**
 * Decoder of end-to-end YOLO outputs `[1, N, 6]`: per row `x1, y1, x2, y2, score, class`
 * (corners in input pixels, or 0..1 of the input when [normalized]), selected with
 * [selectRows]; no NMS (the model did it).
 */
class UltralyticsEnd2endDecoder(
    val settings: DecodeSettings,
    val output: Int = 0,
    val normalized: Boolean = false
) : Decoder {
    override val labels: List<String> get() = settings.labels
    override val outputs: IntArray = intArrayOf(output)
    override val outputKeys: List<String> = listOf("output")
    private var rows = -1

    override fun check(shapes: List<IntArray>) {
        val s = shapes[0]
        if (s.size != 3 || s[0] != 1 || s[2] != 6) {
            throw UnsupportedModelException("output $output has shape ${shapeText(s)}, expected [1, N, 6] (x1, y1, x2, y2, " +
                "score, class per row: end-to-end YOLO, ${UltralyticsEnd2end.type}); a [1, 4+C, N] output is " +
                "decoder ${UltralyticsYolo.type}.")
        }
        rows = s[1]
    }

    override fun decode(tensors: List<OutputTensor>): RawDetections {
        if (rows < 0) throw IllegalStateException("check the output shape before decoding (Decoders.checkOutputs)")
        val t = tensors[0]
        val w = settings.inputWidth.toFloat()
        val h = settings.inputHeight.toFloat()
        val boxes = FloatArray(rows * 4)
        val scores = FloatArray(rows)
        val classes = FloatArray(rows)
        for (r in 0 until rows) {
            for (j in 0 until 4) {
                val v = t.value(r * 6 + j)
                boxes[r * 4 + j] = if (!normalized) v else v * (if (j % 2 == 0) w else h)
            }
            scores[r] = t.value(r * 6 + 4)
            classes[r] = t.value(r * 6 + 5)
        }
        return selectRows(boxes, scores, classes, labels.size, settings.scoreThreshold, settings.maxDetections,
            settings.classes)
    }
}
