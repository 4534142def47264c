package org.edgecnn.core

/** A model the app cannot run; the message is meant for the screen as is. */
class UnsupportedModelException(message: String) : Exception(message)

/**
 * Everything the app checks before it runs a model, with messages a user can act on: the
 * bytes are a TFLite flatbuffer, they carry valid edgecnn metadata, the task and decoder are
 * ones the app runs, and the interpreter's tensors match the metadata. The same checks as
 * `edgecnn export android` (edgecnn/export/android.py), so a model that passes there runs here.
 */
object ModelCheck {
    val TASKS = listOf("classify", "detect")
    val DECODERS: List<String> get() = Decoders.types

    /**
     * Metadata of a model file for the app.
     *
     * @param name how to call the file in messages.
     * @throws UnsupportedModelException naming the problem and the fix.
     */
    fun metadata(name: String, data: ByteArray): Metadata {
        if (!Metadata.isTflite(data)) {
            throw UnsupportedModelException("$name is not a TFLite model (no TFL3 identifier). Copy the .tflite that 'edgecnn convert' wrote.")
        }
        val meta = try {
            Metadata.read(data)
        } catch (e: MetadataException) {
            val fix = if (e.message!!.contains("corrupt")) " Re-run 'edgecnn convert' to rewrite it." else ""
            throw UnsupportedModelException("$name: ${e.message}.$fix")
        } ?: throw UnsupportedModelException(
            "$name carries no edgecnn metadata, so the app cannot know its task, labels or normalization. " +
                "Convert the model with 'edgecnn convert' and copy it with 'edgecnn export android MODEL.tflite'.")
        if (meta.task !in TASKS) {
            throw UnsupportedModelException("$name: task '${meta.task}' is not supported by this app (it runs ${TASKS.joinToString(", ")}).")
        }
        if (meta.task == "detect" && (meta.decoder == null || meta.decoder.type !in DECODERS)) {
            throw UnsupportedModelException("$name: detection decoder '${meta.decoder?.type}' is not supported by this app (it decodes ${DECODERS.joinToString(", ")}).")
        }
        if (meta.input.layout != "NHWC") {
            throw UnsupportedModelException("$name: input layout ${meta.input.layout} is not supported by this app (it feeds " +
                "NHWC images). Convert the model with 'edgecnn convert', which writes NHWC.")
        }
        val dec = meta.decoder
        if (meta.task == "detect" && dec != null &&
            (dec.scoreThreshold !in 0.0..1.0 || dec.iouThreshold !in 0.0..1.0 || dec.maxDetections < 1)) {
            throw UnsupportedModelException("$name: decoder thresholds must be within 0..1 and max_detections >= 1 " +
                "(score ${dec.scoreThreshold}, iou ${dec.iouThreshold}, max ${dec.maxDetections}).")
        }
        return meta
    }

    /**
     * Check the interpreter's tensor shapes against the metadata.
     *
     * @param input shape of input 0.
     * @param outputs shapes of all outputs in interpreter order.
     * @return the detection decoder, checked against [outputs] and ready to decode (null for
     *   a classifier).
     */
    fun tensors(name: String, meta: Metadata, input: IntArray, outputs: List<IntArray>): Decoder? {
        val spec = meta.input
        val want = intArrayOf(1, spec.height, spec.width, spec.channels)
        if (!input.contentEquals(want)) {
            throw UnsupportedModelException("$name: input shape ${input.toList()} does not match the metadata " +
                "${want.toList()}. Re-run 'edgecnn convert'.")
        }
        if (meta.task == "classify") {
            if (outputs.isEmpty()) throw UnsupportedModelException("$name has no outputs.")
            var n = 1
            for (d in outputs[0]) n *= d
            if (n != meta.labels.size) {
                throw UnsupportedModelException("$name: the model has $n outputs but the metadata lists ${meta.labels.size} labels.")
            }
            return null
        }
        val decoder = try {
            Decoders.create(meta)
        } catch (e: MetadataException) {
            throw UnsupportedModelException("$name: ${e.message}.")
        }
        Decoders.checkOutputs(name, decoder, outputs)
        return decoder
    }
}
