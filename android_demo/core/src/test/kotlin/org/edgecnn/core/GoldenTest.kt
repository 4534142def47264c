package org.edgecnn.core

import org.edgecnn.core.Fixtures.bytes
import org.edgecnn.core.Fixtures.floats
import org.edgecnn.core.Fixtures.int
import org.edgecnn.core.Fixtures.ints
import org.edgecnn.core.Fixtures.num
import org.edgecnn.core.Fixtures.obj
import org.edgecnn.core.Fixtures.objects
import org.edgecnn.core.Fixtures.strings
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Test
import java.nio.ByteBuffer
import java.nio.ByteOrder

/**
 * The Kotlin core against `tests/golden/detect_golden.json`, written by the Python runtime
 * (benchmarks/make_golden.py): same boxes (IoU >= 0.99), labels, scores (1e-4) and top-k.
 */
class GoldenTest {
    private val golden = Fixtures.golden
    private val tol = obj(golden["tolerances"])
    private val minIou = num(tol["box_iou"])
    private val scoreTol = num(tol["score"])

    @Test
    fun goldenFileHasAllSections() {
        assertEquals("edgecnn.golden/1", golden["schema"])
        for (key in listOf("detect", "classify", "letterbox", "input_lut")) {
            assertTrue("golden section '$key' is empty", objects(golden[key]).isNotEmpty())
        }
        // At least one case must produce detections, or the comparison below proves nothing.
        assertTrue(objects(golden["detect"]).any { objects(it["detections"]).isNotEmpty() })
    }

    @Test
    fun dequantizationMatchesPythonBitForBit() {
        for (case in objects(golden["detect"])) {
            for (key in listOf("boxes", "scores")) {
                val t = obj(case[key])
                if (t["dtype"] != "int8") continue
                val q = Quant(num(t["scale"]), int(t["zero_point"]))
                val got = dequantizeInt8(bytes(t["raw"]), q)
                assertArrayEquals("${case["name"]}.$key", floats(t["dequantized"]), got, 0f)
            }
        }
    }

    private fun tensor(t: Map<String, Any?>, via: String): OutputTensor {
        val dtype = t["dtype"]
        if (dtype == "float32") return OutputTensor.of(floats(t["raw"]))
        val q = Quant(num(t["scale"]), int(t["zero_point"]))
        return when (via) {
            "raw" -> OutputTensor.int8(bytes(t["raw"]), q)
            "buffer" -> {
                val raw = bytes(t["raw"])
                val buf = ByteBuffer.allocateDirect(raw.size).order(ByteOrder.nativeOrder())
                buf.put(raw).rewind()
                OutputTensor.of(buf, TensorType.INT8, q)
            }
            else -> OutputTensor.of(floats(t["dequantized"]))
        }
    }

    /** The case's decoder, built through the registry from a decoder section like a model's. */
    private fun decoderFor(case: Map<String, Any?>): AnchorFreeLtrbDecoder {
        val input = obj(case["input"])
        val spec = DecoderSpec("anchor_free_ltrb", num(case["score_threshold"]), num(case["iou_threshold"]),
            int(case["max_detections"]), mapOf("strides" to Fixtures.list(case["strides"]),
                "box_output" to 0.0, "score_output" to 1.0))
        val settings = DecodeSettings(int(input["height"]), int(input["width"]), strings(case["labels"]),
            spec.scoreThreshold, spec.iouThreshold, spec.maxDetections)
        return Decoders.find("anchor_free_ltrb")!!.create(spec, settings) as AnchorFreeLtrbDecoder
    }

    @Test
    fun detectionsMatchPythonRuntime() {
        var compared = 0
        for (case in objects(golden["detect"])) {
            val name = case["name"] as String
            val decoder = decoderFor(case)
            assertEquals(name, int(case["num_anchors"]), decoder.anchors.size)
            val image = obj(case["image"])
            val lb = obj(case["letterbox"])
            val letterbox = Letterbox(num(lb["scale_x"]), num(lb["scale_y"]), num(lb["pad_x"]), num(lb["pad_y"]),
                int(image["width"]), int(image["height"]), 0, 0)
            val expected = objects(case["detections"])
            // Integer outputs three ways: raw bytes, an interpreter-like ByteBuffer, dequantized floats.
            for (via in listOf("raw", "buffer", "float")) {
                val raw = decoder.decode(listOf(tensor(obj(case["boxes"]), via), tensor(obj(case["scores"]), via)))
                val dets = toImage(raw, letterbox, decoder.labels)
                assertEquals("$name via $via: number of detections", expected.size, dets.size)
                for (i in expected.indices) {
                    val e = expected[i]
                    val d = dets[i]
                    val where = "$name via $via, detection $i"
                    assertEquals(where, int(e["index"]), d.category.index)
                    assertEquals(where, e["label"], d.category.label)
                    assertEquals(where, num(e["score"]), d.category.score.toDouble(), scoreTol)
                    assertEquals(where, int(e["anchor"]), raw.anchors[i])
                    val eb = floats(e["box"])
                    val iou = d.box.iou(Rect(eb[0].toDouble(), eb[1].toDouble(), eb[2].toDouble(), eb[3].toDouble()))
                    assertTrue("$where: IoU $iou < $minIou (${d.box} vs ${eb.toList()})", iou >= minIou)
                    val mb = floats(e["box_model"])
                    for (k in 0 until 4) assertEquals("$where box_model[$k]", mb[k], raw.boxes[i * 4 + k], 1e-3f)
                    compared++
                }
            }
        }
        assertTrue("no detections were compared", compared > 0)
    }

    @Test
    fun topKMatchesPythonClassifier() {
        for (case in objects(golden["classify"])) Fixtures.assertTopKMatches(case, scoreTol)
    }

    @Test
    fun letterboxGeometryMatchesPythonPreprocessor() {
        for (g in objects(golden["letterbox"])) {
            val lb = Letterbox.fit(int(g["src_width"]), int(g["src_height"]), int(g["dst_width"]), int(g["dst_height"]), "letterbox")
            val where = "letterbox $g"
            assertEquals(where, num(g["scale_x"]), lb.scaleX, 1e-12)
            assertEquals(where, num(g["scale_y"]), lb.scaleY, 1e-12)
            assertEquals(where, num(g["pad_x"]), lb.padX, 0.0)
            assertEquals(where, num(g["pad_y"]), lb.padY, 0.0)
        }
    }

    @Test
    fun inputLookupTablesMatchPythonBitForBit() {
        for (g in objects(golden["input_lut"])) {
            val expected = Fixtures.list(g["lut"]).map { ints(it) }
            val channels = expected.size
            val mean = Fixtures.list(g["mean"]).map { it as Double }.toDoubleArray()
            val std = Fixtures.list(g["std"]).map { it as Double }.toDoubleArray()
            val spec = InputSpec(height = 8, width = 8, channels = channels, mean = mean, std = std)
            val type = if (g["dtype"] == "int8") TensorType.INT8 else TensorType.UINT8
            val lut = InputLut.build(spec, type, Quant(num(g["scale"]), int(g["zero_point"])))
            for (c in 0 until channels) {
                val got = IntArray(256) { lut.intValue(c, it) }
                assertArrayEquals("lut ${g["mean"]} channel $c", expected[c], got)
            }
        }
    }
}
