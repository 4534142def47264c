package org.edgecnn.core

import java.nio.ByteBuffer
import java.nio.charset.CharacterCodingException
import java.nio.charset.CodingErrorAction

/** `input` section of the metadata: what the model wants to see (docs/FORMAT.md). */
class InputSpec(
    val height: Int,
    val width: Int,
    val channels: Int = 3,
    val layout: String = "NHWC",
    val color: String = "RGB",
    val resize: String = "stretch",
    val mean: DoubleArray = doubleArrayOf(0.0),
    val std: DoubleArray = doubleArrayOf(255.0),
    val padValue: Int = 114,
    /**
     * `area` (edgecnn's shrink) or `linear` (one bilinear resize). The app resizes every
     * frame with one filtered bitmap draw, which is bilinear, whichever this says.
     */
    val interpolation: String = "area"
) {
    /** Per-channel mean, broadcast from one value if the document gives one. */
    fun meanOf(channel: Int): Double = if (mean.size == 1) mean[0] else mean[channel]

    fun stdOf(channel: Int): Double = if (std.size == 1) std[0] else std[channel]
}

/**
 * `decoder` section of a detection model's metadata: the fields every decoder has plus the
 * layout's own [params] (everything else in the section, as parsed JSON), which its
 * [DecoderFactory] checks when the type is known. Keys ending in `_output` are positions in
 * the interpreter's output list.
 */
class DecoderSpec(
    val type: String = "anchor_free_ltrb",
    val scoreThreshold: Double = 0.25,
    val iouThreshold: Double = 0.45,
    val maxDetections: Int = 100,
    val params: Map<String, Any?> = emptyMap()
) {
    companion object {
        val COMMON_KEYS = setOf("type", "score_threshold", "iou_threshold", "max_detections")
    }
}

/**
 * The `edgecnn.json` document carried by every `.tflite` that `edgecnn convert` writes.
 *
 * Validation mirrors `Metadata.from_dict` in `edgecnn/runtime/metadata.py`: the same documents
 * are accepted and the first problem is reported as a [MetadataException].
 *
 * Example:
 * ```
 * val meta = Metadata.read(modelBytes) ?: error("no metadata")
 * println("${meta.task}: ${meta.labels.size} labels, input ${meta.input.width}x${meta.input.height}")
 * ```
 */
class Metadata(
    val task: String,
    val labels: List<String>,
    val input: InputSpec,
    val name: String = "model",
    val arch: String = "",
    val outputActivation: String = "softmax",
    val decoder: DecoderSpec? = null,
    val quantization: String = "",
    val edgecnnVersion: String = ""
) {
    companion object {
        const val SCHEMA = "edgecnn.metadata/1"
        const val JSON_NAME = "edgecnn.json"
        const val LABELS_NAME = "labels.txt"
        val TASKS = listOf("classify", "detect")
        private val INPUT_KEYS = setOf("height", "width", "channels", "layout", "color", "resize", "mean", "std", "pad_value", "interpolation")

        /** True if the bytes start like a TFLite flatbuffer (identifier `TFL3` at offset 4). */
        fun isTflite(data: ByteArray): Boolean =
            data.size >= 8 && data[4] == 0x54.toByte() && data[5] == 0x46.toByte() &&
                data[6] == 0x4C.toByte() && data[7] == 0x33.toByte() // "TFL3"

        /**
         * The metadata of a model file's bytes, or null when it carries none.
         *
         * @throws MetadataException if a bundle is there but is corrupt or invalid.
         */
        fun read(data: ByteArray): Metadata? {
            val entries = Bundle.entries(data) ?: return null
            val json = entries[JSON_NAME] ?: return null
            val text = try {
                Charsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(json)).toString()
            } catch (e: CharacterCodingException) {
                throw MetadataException("the model's metadata bundle is corrupt: $JSON_NAME is not UTF-8")
            }
            val doc = try {
                Json.parse(text)
            } catch (e: JsonException) {
                throw MetadataException("the model's metadata bundle is corrupt: ${e.message}")
            }
            return fromJson(doc)
        }

        /** Validate a parsed metadata document. */
        fun fromJson(value: Any?): Metadata {
            if (value !is Map<*, *>) throw MetadataException("metadata is not a JSON object")
            val doc = JsonAccess.obj(value, "metadata")
            val schema = doc["schema"]
            if (schema != SCHEMA) {
                throw MetadataException("unsupported metadata schema ${pyRepr(schema)} (this app reads $SCHEMA; re-run 'edgecnn convert')")
            }
            val task = doc["task"]
            if (task !is String || task !in TASKS) {
                throw MetadataException("metadata task ${pyRepr(task)} is not one of ${TASKS.joinToString(", ")}")
            }
            val rawLabels = doc["labels"]
            if (rawLabels !is List<*> || rawLabels.isEmpty() || rawLabels.any { it !is String }) {
                throw MetadataException("metadata 'labels' must be a non-empty list of strings")
            }
            val labels = rawLabels.map { it as String }
            val input = parseInput(doc["input"])
            val decoderDoc = doc["decoder"]
            val decoder = if (isFalsy(decoderDoc)) null else parseDecoder(decoderDoc)
            if (input.height <= 0 || input.width <= 0 || (input.channels != 1 && input.channels != 3)) {
                throw MetadataException("metadata input size ${input.height}x${input.width}x${input.channels} is invalid")
            }
            if ((input.resize != "stretch" && input.resize != "letterbox") ||
                (input.color != "RGB" && input.color != "BGR" && input.color != "GRAY")) {
                throw MetadataException("metadata input resize/color ${input.resize}/${input.color} is invalid")
            }
            if ((input.layout != "NHWC" && input.layout != "NCHW") ||
                (input.interpolation != "area" && input.interpolation != "linear")) {
                throw MetadataException("metadata input layout/interpolation ${input.layout}/${input.interpolation} is invalid")
            }
            for (list in listOf(input.mean, input.std)) {
                if (list.size != 1 && list.size != input.channels) {
                    throw MetadataException("metadata input mean/std must have 1 or ${input.channels} values")
                }
            }
            if (input.std.any { it == 0.0 }) throw MetadataException("metadata input std must not be 0")
            if (task == "detect" && decoder == null) throw MetadataException("detection metadata has no 'decoder' section")
            val output = doc["output"]
            val activation = if (output is Map<*, *>) (output["activation"] ?: "softmax").toString() else "softmax"
            return Metadata(
                task = task, labels = labels, input = input,
                name = (doc["name"] ?: "model").toString(), arch = (doc["arch"] ?: "").toString(),
                outputActivation = activation, decoder = decoder,
                quantization = (doc["quantization"] ?: "").toString(),
                edgecnnVersion = (doc["edgecnn_version"] ?: "").toString()
            )
        }

        private fun parseInput(value: Any?): InputSpec {
            if (value == null) throw MetadataException("metadata 'input' or 'decoder' is malformed: 'input' is missing")
            val d = JsonAccess.obj(value, "metadata 'input'")
            unknownKeys(d, INPUT_KEYS, "input")
            return InputSpec(
                height = JsonAccess.int(d, "height"), width = JsonAccess.int(d, "width"),
                channels = JsonAccess.int(d, "channels", 3), layout = JsonAccess.string(d, "layout", "NHWC"),
                color = JsonAccess.string(d, "color", "RGB"), resize = JsonAccess.string(d, "resize", "stretch"),
                mean = JsonAccess.numbers(d, "mean", doubleArrayOf(0.0)),
                std = JsonAccess.numbers(d, "std", doubleArrayOf(255.0)),
                padValue = JsonAccess.int(d, "pad_value", 114),
                interpolation = JsonAccess.string(d, "interpolation", "area")
            )
        }

        private fun parseDecoder(value: Any?): DecoderSpec {
            val d = JsonAccess.obj(value, "metadata 'decoder'")
            val type = JsonAccess.string(d, "type", "anchor_free_ltrb")
            val params = d.filterKeys { it !in DecoderSpec.COMMON_KEYS }
            // A known layout checks its fields now; an unknown one is kept for the caller to refuse.
            Decoders.find(type)?.validate(params)
            return DecoderSpec(
                type = type,
                scoreThreshold = JsonAccess.number(d, "score_threshold", 0.25),
                iouThreshold = JsonAccess.number(d, "iou_threshold", 0.45),
                maxDetections = JsonAccess.int(d, "max_detections", 100),
                params = params
            )
        }

        private fun unknownKeys(d: Map<String, Any?>, known: Set<String>, section: String) {
            for (key in d.keys) {
                if (key !in known) throw MetadataException("metadata 'input' or 'decoder' is malformed: unknown key '$key' in '$section'")
            }
        }

        // Python's `if doc.get("decoder")`: null, {}, [] , "", 0 and false all mean "no decoder".
        private fun isFalsy(v: Any?): Boolean = v == null || v == false || v == 0.0 ||
            (v is String && v.length == 0) || (v is Map<*, *> && v.isEmpty()) || (v is List<*> && v.isEmpty())

        private fun pyRepr(v: Any?): String = when (v) {
            null -> "None"
            is String -> "'$v'"
            else -> v.toString()
        }
    }
}
