package org.edgecnn.core

import org.edgecnn.core.Fixtures.ints
import org.edgecnn.core.Fixtures.obj
import org.edgecnn.core.Fixtures.objects
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test

/** The app's on-screen messages for models it cannot run (never a crash). */
class ModelCheckTest {
    private val tiny = Fixtures.tinyModel
    private val tensors = obj(Fixtures.tinyExpect["tensors"])
    private val inputShape = ints(objects(tensors["inputs"])[0]["shape"])
    private val outputShapes = objects(tensors["outputs"]).map { ints(it["shape"]) }

    private fun refused(vararg needles: String, block: () -> Unit) {
        try {
            block()
            fail("expected UnsupportedModelException")
        } catch (e: UnsupportedModelException) {
            for (n in needles) assertTrue("'${e.message}' should mention '$n'", e.message!!.contains(n))
        }
    }

    @Test
    fun tinyModelPassesEveryCheck() {
        val meta = ModelCheck.metadata("tiny.tflite", tiny)
        assertEquals("detect", meta.task)
        ModelCheck.tensors("tiny.tflite", meta, inputShape, outputShapes)
    }

    @Test
    fun explainsWhatIsWrongWithTheFile() {
        refused("not a TFLite model") { ModelCheck.metadata("x.tflite", "hello world".toByteArray()) }
        refused("no edgecnn metadata", "edgecnn convert") { ModelCheck.metadata("x.tflite", Bundle.flatbuffer(tiny)) }
        val corrupt = tiny.copyOf()
        val inJson = Bundle.archiveStart(tiny) + 30 + Metadata.JSON_NAME.length + 10 // inside edgecnn.json's bytes
        corrupt[inJson] = (corrupt[inJson] + 1).toByte()
        refused("x.tflite", "corrupt", "CRC", "edgecnn convert") { ModelCheck.metadata("x.tflite", corrupt) }
    }

    @Test
    fun unsupportedTaskOrDecoderIsRefused() {
        refused("task 'segment' is not one of classify, detect") {
            ModelCheck.metadata("seg.tflite", Fixtures.modelWith(Fixtures.metadataJson(task = "segment")))
        }
        refused("decoder 'yolo_v8' is not supported") {
            ModelCheck.metadata("y.tflite", Fixtures.modelWith(Fixtures.metadataJson().replace("anchor_free_ltrb", "yolo_v8")))
        }
        refused("thresholds must be within 0..1") {
            ModelCheck.metadata("t.tflite", Fixtures.modelWith(Fixtures.metadataJson().replace("\"iou_threshold\": 0.5", "\"iou_threshold\": 1.5")))
        }
    }

    @Test
    fun inputLayoutAndInterpolationAreRead() {
        val linear = Fixtures.metadataJson().replace("\"pad_value\": 114", "\"pad_value\": 114, \"interpolation\": \"linear\"")
        assertEquals("linear", ModelCheck.metadata("l.tflite", Fixtures.modelWith(linear)).input.interpolation)
        refused("n.tflite: input layout NCHW is not supported", "NHWC") {
            ModelCheck.metadata("n.tflite", Fixtures.modelWith(linear.replace("\"channels\": 3", "\"channels\": 3, \"layout\": \"NCHW\"")))
        }
        refused("layout/interpolation NHWC/cubic is invalid") {
            ModelCheck.metadata("c.tflite", Fixtures.modelWith(linear.replace("linear", "cubic")))
        }
    }

    @Test
    fun tensorsThatDoNotMatchTheMetadataAreRefused() {
        val meta = ModelCheck.metadata("tiny.tflite", tiny)
        refused("input shape [1, 96, 96, 3]") {
            ModelCheck.tensors("tiny.tflite", meta, intArrayOf(1, 96, 96, 3), outputShapes)
        }
        refused("output") { ModelCheck.tensors("tiny.tflite", meta, inputShape, outputShapes.reversed()) }
        refused("has 1 outputs") { ModelCheck.tensors("tiny.tflite", meta, inputShape, outputShapes.subList(0, 1)) }
        val asClassifier = Metadata("classify", meta.labels, meta.input)
        refused("336 outputs but the metadata lists 3 labels") {
            ModelCheck.tensors("tiny.tflite", asClassifier, inputShape, listOf(intArrayOf(1, 84, 4)))
        }
    }
}
