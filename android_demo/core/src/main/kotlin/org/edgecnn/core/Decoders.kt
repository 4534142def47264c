package org.edgecnn.core

/**
 * A detection decoder: the raw outputs of one image -> detections in model-input pixels, the
 * Kotlin twin of `edgecnn/runtime/decoders/base.py`. One output layout is one file with a
 * [DecoderFactory] (its fields of the metadata's `decoder` section) and a [Decoder]; add the
 * factory to [Decoders.FACTORIES] and pin it with golden vectors.
 *
 * Integer outputs arrive raw ([OutputTensor.raw]); compare scores in the raw domain where that
 * selects the same candidates (docs/FORMAT.md) and dequantize only what survives.
 */
interface Decoder {
    /** Class names; `labels.size` is the number of classes. */
    val labels: List<String>

    /** Positions in the interpreter's output list this decoder reads, in [decode]'s order. */
    val outputs: IntArray

    /** Metadata keys of [outputs] (`box_output`, `score_output`), for messages. */
    val outputKeys: List<String>

    /**
     * Check the shapes of this decoder's outputs (in [outputs] order). A layout whose reading
     * depends on them (YOLO's orientation, a row count) keeps what it needs, so call this
     * before [decode] ([Decoders.checkOutputs] and [ModelCheck.tensors] do).
     *
     * @throws UnsupportedModelException saying which shapes were expected.
     */
    fun check(shapes: List<IntArray>)

    /** This decoder's outputs (in [outputs] order) -> detections in model-input pixels, best first. */
    fun decode(tensors: List<OutputTensor>): RawDetections

    /** Outputs -> detections in original-image pixels through the letterbox. */
    fun detect(tensors: List<OutputTensor>, letterbox: Letterbox): List<Detection> =
        toImage(decode(tensors), letterbox, labels)
}

/** What every decoder takes besides its own fields: input size, labels, thresholds, class filter. */
class DecodeSettings(
    val inputHeight: Int,
    val inputWidth: Int,
    val labels: List<String>,
    val scoreThreshold: Double,
    val iouThreshold: Double,
    val maxDetections: Int,
    /** Optional allowed class ids; a candidate's best class is then taken among these only. */
    val classes: IntArray? = null
) {
    init {
        require(scoreThreshold in 0.0..1.0 && iouThreshold in 0.0..1.0) {
            "thresholds must be within 0..1 (score $scoreThreshold, iou $iouThreshold)"
        }
        require(maxDetections >= 1) { "max_detections must be >= 1, got $maxDetections" }
    }

    companion object {
        fun of(meta: Metadata, dec: DecoderSpec, classes: IntArray? = null): DecodeSettings =
            DecodeSettings(meta.input.height, meta.input.width, meta.labels, dec.scoreThreshold,
                dec.iouThreshold, dec.maxDetections, classes)
    }
}

/** One registered output layout: checks its metadata fields and builds its [Decoder]. */
interface DecoderFactory {
    /** The metadata's `decoder.type`. */
    val type: String

    /** The layout's fields of the `decoder` section, checked; [MetadataException] names the bad one. */
    fun parse(params: Map<String, Any?>): Any

    /** Check the layout's fields without keeping them. */
    fun validate(params: Map<String, Any?>) {
        parse(params)
    }

    fun create(spec: DecoderSpec, settings: DecodeSettings): Decoder
}

/** The decoders this app runs, by `decoder.type` (the same list as `edgecnn export android`'s). */
object Decoders {
    private val FACTORIES: List<DecoderFactory> = listOf(AnchorFreeLtrb, UltralyticsYolo, UltralyticsEnd2end, SsdPostprocess)
    private val byType: Map<String, DecoderFactory> = FACTORIES.associateBy { it.type }

    val types: List<String> get() = byType.keys.sorted()

    fun find(type: String): DecoderFactory? = byType[type]

    /**
     * The decoder of a detection model's metadata.
     *
     * @throws MetadataException for a model without a decoder section or an unknown type.
     */
    fun create(meta: Metadata, classes: IntArray? = null): Decoder {
        val dec = meta.decoder ?: throw MetadataException("detection metadata has no 'decoder' section")
        val factory = find(dec.type)
            ?: throw MetadataException("unknown decoder type '${dec.type}' (this app decodes: ${types.joinToString(", ")})")
        return factory.create(dec, DecodeSettings.of(meta, dec, classes))
    }

    /**
     * Check a decoder against all of the interpreter's output shapes (positions, then shapes).
     *
     * @throws UnsupportedModelException naming the problem.
     */
    fun checkOutputs(name: String, decoder: Decoder, shapes: List<IntArray>) {
        for ((i, index) in decoder.outputs.withIndex()) {
            if (index < 0 || index >= shapes.size) {
                throw UnsupportedModelException("$name: decoder.${decoder.outputKeys[i]} = $index but the model has ${shapes.size} outputs.")
            }
        }
        try {
            decoder.check(decoder.outputs.map { shapes[it] })
        } catch (e: UnsupportedModelException) {
            throw UnsupportedModelException("$name: ${e.message}")
        }
    }
}

/** Typed reading of a layout's fields: unknown keys and wrong types are [MetadataException]s. */
class DecoderParams(private val type: String, private val params: Map<String, Any?>, known: Collection<String>) {
    init {
        for (key in params.keys) {
            if (key !in known) {
                throw MetadataException("metadata 'input' or 'decoder' is malformed: unknown key '$key' in 'decoder' of type '$type'")
            }
        }
    }

    fun int(key: String, default: Int): Int = JsonAccess.int(params, key, default)

    fun ints(key: String, default: IntArray): IntArray = JsonAccess.ints(params, key, default)

    fun number(key: String, default: Double): Double = JsonAccess.number(params, key, default)

    fun string(key: String, default: String): String = JsonAccess.string(params, key, default)

    fun bool(key: String, default: Boolean): Boolean {
        val v = params[key] ?: return default
        if (v !is Boolean) throw MetadataException("metadata 'decoder.$key' must be true or false, got $v")
        return v
    }

    /** An integer within [lo]..[hi], as `_coerce` of `decoders/base.py` bounds it. */
    fun int(key: String, default: Int, lo: Int, hi: Int): Int {
        val v = int(key, default)
        if (v < lo || v > hi) throw MetadataException("metadata 'decoder.$key' must be an integer in $lo..$hi, got $v")
        return v
    }

    /**
     * Output positions (`output`, `*_output` keys): each in 0..15 and all different, as
     * `Decoder.parse_params` checks them.
     */
    fun outputs(defaults: List<Pair<String, Int>>): IntArray {
        val got = IntArray(defaults.size) { int(defaults[it].first, defaults[it].second, 0, MAX_OUTPUT_INDEX) }
        for (i in got.indices) {
            for (j in i + 1 until got.size) {
                if (got[i] == got[j]) {
                    throw MetadataException("metadata 'decoder.${defaults[i].first}' and 'decoder.${defaults[j].first}' must differ")
                }
            }
        }
        return got
    }

    companion object {
        /** Highest output position a decoder section may name (`metaschema.MAX_OUTPUT_INDEX`). */
        const val MAX_OUTPUT_INDEX = 15
    }
}

/** Model-input boxes -> original-image [Detection]s through the letterbox (clipped to the image). */
fun toImage(raw: RawDetections, letterbox: Letterbox, labels: List<String>): List<Detection> {
    val out = ArrayList<Detection>(raw.size)
    val b = raw.boxes
    for (i in 0 until raw.size) {
        val rect = Rect(letterbox.toImageX(b[i * 4].toDouble()), letterbox.toImageY(b[i * 4 + 1].toDouble()),
            letterbox.toImageX(b[i * 4 + 2].toDouble()), letterbox.toImageY(b[i * 4 + 3].toDouble()))
        val cls = raw.classes[i]
        out.add(Detection(rect, Category(cls, labels[cls], raw.scores[i])))
    }
    return out
}

/** `[a, b, c]`, as Python prints a shape list. */
internal fun shapeText(shape: IntArray): String = shape.joinToString(", ", "[", "]")
