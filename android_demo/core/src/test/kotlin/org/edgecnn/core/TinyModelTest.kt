package org.edgecnn.core

import org.edgecnn.core.Fixtures.int
import org.edgecnn.core.Fixtures.obj
import org.edgecnn.core.Fixtures.strings
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertNotNull
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test

/** The metadata of the real tiny int8 detector in tests/golden, as the Python writer put it there. */
class TinyModelTest {
    private val data = Fixtures.tinyModel
    private val expect = Fixtures.tinyExpect

    @Test
    fun findsTheAppendedArchiveWherePythonWroteIt() {
        assertTrue(Metadata.isTflite(data))
        assertEquals(int(expect["size_bytes"]), data.size)
        assertEquals(int(expect["bundle_offset"]), Bundle.archiveStart(data))
        val entries = Bundle.entries(data)!!
        assertEquals(strings(expect["entries"]), entries.keys.toList())
        assertEquals(int(expect["bundle_offset"]), Bundle.flatbuffer(data).size)
    }

    @Test
    fun readsTheMetadataDocument() {
        val meta = Metadata.read(data)!!
        val doc = obj(expect["metadata"])
        val input = obj(doc["input"])
        val dec = obj(doc["decoder"])
        assertEquals(doc["task"], meta.task)
        assertEquals(strings(doc["labels"]), meta.labels)
        assertEquals(int(input["height"]), meta.input.height)
        assertEquals(int(input["width"]), meta.input.width)
        assertEquals(int(input["channels"]), meta.input.channels)
        assertEquals(input["color"], meta.input.color)
        assertEquals(input["resize"], meta.input.resize)
        assertEquals(int(input["pad_value"]), meta.input.padValue)
        assertArrayEquals(Fixtures.list(input["mean"]).map { it as Double }.toDoubleArray(), meta.input.mean, 0.0)
        assertArrayEquals(Fixtures.list(input["std"]).map { it as Double }.toDoubleArray(), meta.input.std, 0.0)
        val decoder = meta.decoder!!
        val params = AnchorFreeLtrb.parse(decoder.params)
        assertEquals(dec["type"], decoder.type)
        assertArrayEquals(Fixtures.ints(dec["strides"]), params.strides)
        assertEquals(int(dec["box_output"]), params.boxOutput)
        assertEquals(int(dec["score_output"]), params.scoreOutput)
        assertEquals(dec["score_threshold"] as Double, decoder.scoreThreshold, 0.0)
        assertEquals(dec["iou_threshold"] as Double, decoder.iouThreshold, 0.0)
        assertEquals(int(dec["max_detections"]), decoder.maxDetections)
        assertEquals(doc["quantization"], meta.quantization)
        val labelsTxt = String(Bundle.entries(data)!![Metadata.LABELS_NAME]!!, Charsets.UTF_8)
        assertEquals(expect["labels_txt"], labelsTxt)
    }

    @Test
    fun fileIsTheOneDescribed() {
        val digest = java.security.MessageDigest.getInstance("SHA-256").digest(data)
        val hex = StringBuilder()
        for (b in digest) hex.append(String.format("%02x", b.toInt() and 0xFF))
        assertEquals(expect["sha256"], hex.toString())
        assertEquals(int(expect["bundle_size"]), data.size - Bundle.archiveStart(data))
    }

    @Test
    fun decoderAnchorCountMatchesTheInterpretersOutputShapes() {
        // `tensors` is what the Python interpreter reported for this file, not the metadata's copy.
        val meta = Metadata.read(data)!!
        val outputs = Fixtures.objects(obj(expect["tensors"])["outputs"])
        val decoder = Decoders.create(meta) as AnchorFreeLtrbDecoder
        val boxShape = Fixtures.ints(outputs[decoder.boxOutput]["shape"])
        val scoreShape = Fixtures.ints(outputs[decoder.scoreOutput]["shape"])
        assertArrayEquals(intArrayOf(1, decoder.anchors.size, 4), boxShape)
        assertArrayEquals(intArrayOf(1, decoder.anchors.size, meta.labels.size), scoreShape)
    }

    @Test
    fun modelWithoutBundleHasNoMetadata() {
        val plain = Bundle.flatbuffer(data)
        assertTrue(Metadata.isTflite(plain))
        assertNull(Bundle.entries(plain))
        assertNull(Metadata.read(plain))
    }

    @Test
    fun flippedByteInTheJsonIsReportedAsCorrupt() {
        val copy = data.copyOf()
        val text = String(copy, Charsets.ISO_8859_1)
        val at = text.indexOf("\"labels\"", Bundle.archiveStart(copy))
        assertTrue(at > 0)
        copy[at + 2] = 0x58 // 'X'
        try {
            Metadata.read(copy)
            fail("a corrupt bundle must raise MetadataException")
        } catch (e: MetadataException) {
            assertTrue(e.message, e.message!!.contains("CRC"))
        }
    }

    @Test
    fun truncatedFileIsTreatedAsHavingNoBundle() {
        // Cutting the end record away leaves no archive to find: a plain model, not a crash.
        val cut = data.copyOfRange(0, data.size - 10)
        assertNull(Metadata.read(cut))
        assertNotNull(Metadata.read(data))
    }
}
