package org.edgecnn.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test

/** Validation mirrors Metadata.from_dict in edgecnn/runtime/metadata.py. */
class MetadataTest {
    private fun invalid(json: String, needle: String) {
        try {
            Metadata.fromJson(Json.parse(json))
            fail("should be rejected: $json")
        } catch (e: MetadataException) {
            assertTrue("'${e.message}' should mention '$needle'", e.message!!.contains(needle))
        }
    }

    @Test
    fun parsesADetectionDocument() {
        val m = Metadata.read(Fixtures.modelWith(Fixtures.metadataJson()))!!
        assertEquals("detect", m.task)
        assertEquals(listOf("a", "b"), m.labels)
        assertEquals(64, m.input.height)
        assertEquals(48, m.input.width)
        assertEquals("letterbox", m.input.resize)
        assertEquals(127.5, m.input.meanOf(2), 0.0)
        val d = m.decoder!!
        val p = AnchorFreeLtrb.parse(d.params)
        assertArrayEquals(intArrayOf(8, 16, 32), p.strides)
        assertEquals(1, p.boxOutput)
        assertEquals(0, p.scoreOutput)
        assertEquals(0.3, d.scoreThreshold, 0.0)
        assertEquals(10, d.maxDetections)
    }

    @Test
    fun appliesPythonDefaults() {
        val m = Metadata.fromJson(Json.parse("""{"schema": "edgecnn.metadata/1", "task": "classify",
            "labels": ["x"], "input": {"height": 28, "width": 28, "channels": 1}}"""))
        assertEquals("softmax", m.outputActivation)
        assertEquals("stretch", m.input.resize)
        assertEquals("RGB", m.input.color)
        assertEquals(0.0, m.input.meanOf(0), 0.0)
        assertEquals(255.0, m.input.stdOf(0), 0.0)
        assertEquals(114, m.input.padValue)
        assertNull(m.decoder)
        val none = Metadata.fromJson(Json.parse("""{"schema": "edgecnn.metadata/1", "task": "classify",
            "labels": ["x"], "input": {"height": 28, "width": 28}, "output": {"activation": "none"}, "decoder": {}}"""))
        assertEquals("none", none.outputActivation)
        assertNull(none.decoder)
    }

    @Test
    fun rejectsWhatPythonRejects() {
        invalid("[]", "not a JSON object")
        invalid("""{"schema": "edgecnn.metadata/2", "task": "classify"}""", "unsupported metadata schema 'edgecnn.metadata/2'")
        invalid("""{"task": "classify"}""", "unsupported metadata schema None")
        invalid("""{"schema": "edgecnn.metadata/1", "task": "segment", "labels": ["a"]}""", "task 'segment' is not one of classify, detect")
        invalid("""{"schema": "edgecnn.metadata/1", "task": "classify", "labels": []}""", "non-empty list of strings")
        invalid("""{"schema": "edgecnn.metadata/1", "task": "classify", "labels": ["a", 3]}""", "non-empty list of strings")
        invalid("""{"schema": "edgecnn.metadata/1", "task": "classify", "labels": ["a"]}""", "'input' is missing")
        invalid("""{"schema": "edgecnn.metadata/1", "task": "classify", "labels": ["a"], "input": {"width": 3}}""", "'height' is missing")
        invalid("""{"schema": "edgecnn.metadata/1", "task": "classify", "labels": ["a"], "input": {"height": 3, "width": 3, "size": 1}}""", "unknown key 'size'")
        invalid("""{"schema": "edgecnn.metadata/1", "task": "classify", "labels": ["a"], "input": {"height": 3, "width": 3, "channels": 4}}""", "3x3x4 is invalid")
        invalid("""{"schema": "edgecnn.metadata/1", "task": "classify", "labels": ["a"], "input": {"height": 0, "width": 3}}""", "is invalid")
        invalid("""{"schema": "edgecnn.metadata/1", "task": "classify", "labels": ["a"], "input": {"height": 3.5, "width": 3}}""", "must be an integer")
        invalid("""{"schema": "edgecnn.metadata/1", "task": "classify", "labels": ["a"], "input": {"height": 3, "width": 3, "resize": "crop"}}""", "crop/RGB is invalid")
        invalid("""{"schema": "edgecnn.metadata/1", "task": "classify", "labels": ["a"], "input": {"height": 3, "width": 3, "mean": [1, 2]}}""", "1 or 3 values")
        invalid("""{"schema": "edgecnn.metadata/1", "task": "detect", "labels": ["a"], "input": {"height": 3, "width": 3}}""", "no 'decoder' section")
        invalid(Fixtures.metadataJson().replace("\"strides\": [8, 16, 32]", "\"strides\": \"8\""), "list of integers")
        invalid(Fixtures.metadataJson().replace("\"strides\": [8, 16, 32]", "\"strides\": [16, 8]"), "ascending")
        invalid(Fixtures.metadataJson().replace("\"box_output\": 1", "\"box_output\": 0"), "different positions")
        invalid(Fixtures.metadataJson().replace("\"box_output\": 1", "\"box_output\": 1, \"anchors\": 3"), "unknown key 'anchors'")
    }

    @Test
    fun unknownDecoderTypesKeepTheirFields() {
        // Python keeps them too (inspect shows them); running such a model is refused later.
        val m = Metadata.fromJson(Json.parse(Fixtures.metadataJson()
            .replace("anchor_free_ltrb", "some_future_head").replace("\"box_output\": 1", "\"box_output\": 1, \"grid\": [2, 3]")))
        assertEquals("some_future_head", m.decoder!!.type)
        assertEquals(listOf(2.0, 3.0), m.decoder.params["grid"])
        assertEquals(10, m.decoder.maxDetections)
    }

    @Test
    fun unsupportedDecoderIsRefusedByTheDecoderFactory() {
        val m = Metadata.fromJson(Json.parse(Fixtures.metadataJson().replace("anchor_free_ltrb", "yolo_v5")))
        try {
            Decoders.create(m)
            fail()
        } catch (e: MetadataException) {
            assertTrue(e.message, e.message!!.contains("unknown decoder type 'yolo_v5' (this app decodes: anchor_free_ltrb, ssd_postprocess, ultralytics_end2end, ultralytics_yolo)"))
        }
    }
}
