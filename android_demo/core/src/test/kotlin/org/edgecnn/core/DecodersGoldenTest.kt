package org.edgecnn.core

import org.edgecnn.core.Fixtures.bytes
import org.edgecnn.core.Fixtures.floats
import org.edgecnn.core.Fixtures.int
import org.edgecnn.core.Fixtures.ints
import org.edgecnn.core.Fixtures.num
import org.edgecnn.core.Fixtures.obj
import org.edgecnn.core.Fixtures.objects
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Test
import java.nio.ByteBuffer
import java.nio.ByteOrder

/**
 * The foreign layouts (`ultralytics_yolo`, `ultralytics_end2end`, `ssd_postprocess`) against
 * `tests/golden/decoders_golden.json`, written by the Python runtime's decoders
 * (benchmarks/make_golden_decoders.py): same detections, anchors, classes, float32 scores and
 * boxes within the file's tolerances, built through the metadata and the registry as the app
 * builds them.
 */
class DecodersGoldenTest {
    private val golden = Fixtures.decodersGolden
    private val tol = obj(golden["tolerances"])
    private val cases = objects(golden["detect"])

    @Test
    fun goldenFileCoversEveryForeignLayout() {
        assertEquals("edgecnn.golden.decoders/1", golden["schema"])
        val types = cases.map { obj(it["decoder"])["type"] as String }.toSet()
        assertEquals(setOf("ultralytics_yolo", "ultralytics_end2end", "ssd_postprocess"), types)
        for (type in types) {
            val mine = cases.filter { obj(it["decoder"])["type"] == type }
            assertTrue("$type: no case with detections", mine.any { objects(it["detections"]).isNotEmpty() })
            assertTrue("$type: no empty case", mine.any { objects(it["detections"]).isEmpty() })
            assertTrue("$type: no integer outputs", mine.any { c -> objects(c["outputs"]).any { it["dtype"] != "float32" } })
        }
        assertTrue(cases.any { obj(it["input"])["resize"] == "stretch" } && cases.any { obj(it["input"])["resize"] == "letterbox" })
    }

    /** The case's model metadata, parsed and checked like a model file's. */
    private fun metadataOf(case: Map<String, Any?>): Metadata {
        val input = obj(case["input"])
        return Metadata.fromJson(mapOf("schema" to Metadata.SCHEMA, "task" to "detect", "labels" to case["labels"],
            "input" to input, "decoder" to case["decoder"]))
    }

    /** The case's decoder, through [ModelCheck.tensors] as the app builds it. */
    private fun decoderOf(case: Map<String, Any?>): Decoder {
        val meta = metadataOf(case)
        val shapes = objects(case["outputs"]).map { ints(it["shape"]) }
        val input = intArrayOf(1, meta.input.height, meta.input.width, 3)
        val decoder = ModelCheck.tensors(case["name"] as String, meta, input, shapes)!!
        val classes = case["classes"] ?: return decoder
        // A class filter: a fresh decoder with it, checked against the same shapes.
        val filtered = Decoders.create(meta, ints(classes))
        Decoders.checkOutputs(case["name"] as String, filtered, shapes)
        return filtered
    }

    private fun tensor(t: Map<String, Any?>, via: String): OutputTensor {
        val dtype = t["dtype"] as String
        if (dtype == "float32" || via == "float") return OutputTensor.of(floats(t[if (dtype == "float32") "raw" else "dequantized"]))
        val q = Quant(num(t["scale"]), int(t["zero_point"]))
        val raw = bytes(t["raw"])
        val type = if (dtype == "int8") TensorType.INT8 else TensorType.UINT8
        if (via == "buffer") {
            val buf = ByteBuffer.allocateDirect(raw.size).order(ByteOrder.nativeOrder())
            buf.put(raw).rewind()
            return OutputTensor.of(buf, type, q)
        }
        return if (type == TensorType.INT8) OutputTensor.int8(raw, q) else OutputTensor.uint8(raw, q)
    }

    @Test
    fun detectionsMatchPythonDecoders() {
        var compared = 0
        for (case in cases) {
            val name = case["name"] as String
            val decoder = decoderOf(case)
            val input = obj(case["input"])
            val image = obj(case["image"])
            val letterbox = Letterbox.fit(int(image["width"]), int(image["height"]), int(input["width"]),
                int(input["height"]), input["resize"] as String)
            val lb = obj(case["letterbox"])
            assertEquals("$name letterbox", listOf(num(lb["scale_x"]), num(lb["scale_y"]), num(lb["pad_x"]), num(lb["pad_y"])),
                listOf(letterbox.scaleX, letterbox.scaleY, letterbox.padX, letterbox.padY))
            val outputs = objects(case["outputs"])
            val expected = objects(case["detections"])
            // Integer outputs three ways: raw bytes, an interpreter-like ByteBuffer, dequantized floats.
            for (via in listOf("raw", "buffer", "float")) {
                val raw = decoder.decode(decoder.outputs.map { tensor(outputs[it], via) })
                val dets = toImage(raw, letterbox, decoder.labels)
                assertEquals("$name via $via: number of detections", expected.size, dets.size)
                for (i in expected.indices) {
                    val e = expected[i]
                    val where = "$name via $via, detection $i"
                    assertEquals(where, int(e["anchor"]), raw.anchors[i])
                    assertEquals(where, int(e["index"]), dets[i].category.index)
                    assertEquals(where, e["label"], dets[i].category.label)
                    assertEquals("$where score", num(e["score"]), dets[i].category.score.toDouble(), num(tol["score"]))
                    val mb = floats(e["box_model"])
                    for (k in 0 until 4) assertEquals("$where box_model[$k]", mb[k], raw.boxes[i * 4 + k], num(tol["box_model"]).toFloat())
                    val b = dets[i].box
                    assertArrayEquals("$where box", Fixtures.list(e["box"]).map { num(it) }.toDoubleArray(),
                        doubleArrayOf(b.left, b.top, b.right, b.bottom), num(tol["box"]))
                    compared++
                }
            }
        }
        assertTrue("no detections were compared", compared > 0)
    }

    @Test
    fun sigmoidClassifierOutputsMatchPython() {
        val sigmoid = objects(golden["classify"])
        assertTrue(sigmoid.isNotEmpty() && sigmoid.all { it["activation"] == "sigmoid" })
        for (case in sigmoid) Fixtures.assertTopKMatches(case, num(tol["classify_score"]))
    }

    private fun decoder(type: String, labels: Int, params: Map<String, Any?> = emptyMap()): Decoder =
        Decoders.find(type)!!.create(DecoderSpec(type, params = params),
            DecodeSettings(48, 64, (0 until labels).map { "c$it" }, 0.25, 0.45, 100))

    private fun refusedShapes(decoder: Decoder, shapes: List<IntArray>, needle: String) =
        Fixtures.assertThrows<UnsupportedModelException>("shapes ${shapes.map { it.toList() }}", needle) { decoder.check(shapes) }

    @Test
    fun shapesThatDoNotFitAreRefusedWithTheExpectedOnes() {
        refusedShapes(decoder("ultralytics_yolo", 3), listOf(intArrayOf(1, 8, 100)), "expected [1, 7, N] or [1, N, 7]")
        refusedShapes(decoder("ultralytics_yolo", 3, mapOf("objectness" to true)), listOf(intArrayOf(1, 7, 100)),
            "expected [1, 8, N] or [1, N, 8] (4 box values, objectness and 3 class scores")
        refusedShapes(decoder("ultralytics_end2end", 3), listOf(intArrayOf(1, 7, 100)), "expected [1, N, 6]")
        refusedShapes(decoder("ssd_postprocess", 3), listOf(intArrayOf(1, 10, 4), intArrayOf(1, 10), intArrayOf(1, 9), intArrayOf(1)),
            "scores (output 2) [1, 9]")
        // Orientation and row count come from the shapes: decoding unchecked is a programming error.
        for (type in listOf("ultralytics_yolo", "ultralytics_end2end", "ssd_postprocess")) {
            val d = decoder(type, 3)
            Fixtures.assertThrows<IllegalStateException>("$type unchecked", "check the output") {
                d.decode(d.outputs.map { OutputTensor.of(FloatArray(0)) })
            }
        }
    }

    @Test
    fun transposedYoloOutputReadsTheSameDetections() {
        // Two anchors, 1 label, pixel boxes: [1, 5, 2] channels first and its transpose [1, 2, 5].
        val d = decoder("ultralytics_yolo", 1, mapOf("normalized" to false))
        val rows = arrayOf(floatArrayOf(10f, 12f, 4f, 6f, 0.9f), floatArrayOf(30f, 20f, 8f, 8f, 0.1f))
        d.check(listOf(intArrayOf(1, 5, 2)))
        val first = d.decode(listOf(OutputTensor.of(FloatArray(10) { rows[it % 2][it / 2] })))
        d.check(listOf(intArrayOf(1, 2, 5)))
        val second = d.decode(listOf(OutputTensor.of(FloatArray(10) { rows[it / 5][it % 5] })))
        for (r in listOf(first, second)) {
            assertArrayEquals(intArrayOf(0), r.anchors)
            assertArrayEquals(floatArrayOf(8f, 9f, 12f, 15f), r.boxes, 0f)
        }
    }

    private fun invalid(type: String, params: Map<String, Any?>, needle: String) =
        Fixtures.assertThrows<MetadataException>("$type $params", needle) { Decoders.find(type)!!.validate(params) }

    @Test
    fun decoderFieldsAreCheckedLikePython() {
        invalid("ultralytics_yolo", mapOf("normalized" to "yes"), "'decoder.normalized' must be true or false")
        invalid("ultralytics_yolo", mapOf("output" to 16.0), "'decoder.output' must be an integer in 0..15")
        invalid("ultralytics_yolo", mapOf("strides" to listOf(8.0)), "unknown key 'strides'")
        invalid("ultralytics_end2end", mapOf("objectness" to true), "unknown key 'objectness'")
        invalid("ssd_postprocess", mapOf("box_output" to 2.0), "'decoder.box_output' and 'decoder.score_output' must differ")
        invalid("ssd_postprocess", mapOf("class_offset" to 2000.0), "'decoder.class_offset' must be an integer in -1000..1000")
    }
}
