package org.edgecnn.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test

/** The zip reader on archives written by java.util.zip, and on damaged ones. */
class BundleTest {
    private fun assertCorrupt(data: ByteArray, vararg needles: String) {
        try {
            Metadata.read(data)
            fail("expected MetadataException")
        } catch (e: MetadataException) {
            for (n in needles) assertTrue("'${e.message}' should mention '$n'", e.message!!.contains(n))
        }
    }

    @Test
    fun readsEntriesWrittenByJavaUtilZip() {
        val model = Fixtures.modelWith(Fixtures.metadataJson())
        assertEquals(64, Bundle.archiveStart(model))
        val entries = Bundle.entries(model)!!
        assertEquals(listOf("edgecnn.json", "labels.txt"), entries.keys.toList())
        assertArrayEquals("a\nb\n".toByteArray(), entries["labels.txt"])
        assertEquals(64, Bundle.flatbuffer(model).size)
    }

    @Test
    fun plainModelOrEmptyInputHasNoBundle() {
        assertNull(Bundle.entries(Fixtures.fakeFlatbuffer()))
        assertNull(Metadata.read(Fixtures.fakeFlatbuffer()))
        assertNull(Metadata.read(ByteArray(0)))
        assertNull(Metadata.read(ByteArray(21)))
        assertEquals(-1, Bundle.archiveStart(ByteArray(0)))
    }

    @Test
    fun archiveWithoutMetadataEntryMeansNoMetadata() {
        val model = Fixtures.fakeFlatbuffer() + Fixtures.storedZip(mapOf("other.txt" to "x".toByteArray()))
        assertNull(Metadata.read(model))
    }

    @Test
    fun zipAtOffsetZeroIsNotABundle() {
        // Python's split_bundle requires flatbuffer bytes before the archive.
        val zipOnly = Fixtures.storedZip(mapOf(Metadata.JSON_NAME to Fixtures.metadataJson().toByteArray()))
        assertNull(Metadata.read(zipOnly))
    }

    @Test
    fun deflatedEntryIsAClearError() {
        val model = Fixtures.fakeFlatbuffer() + Fixtures.storedZip(
            mapOf(Metadata.JSON_NAME to Fixtures.metadataJson().toByteArray()), deflate = setOf(Metadata.JSON_NAME))
        assertCorrupt(model, "compressed")
    }

    @Test
    fun corruptedPayloadFailsTheCrcCheck() {
        val model = Fixtures.modelWith(Fixtures.metadataJson())
        val at = String(model, Charsets.ISO_8859_1).indexOf("\"task\"")
        model[at + 1] = 0x54 // 't' -> 'T'
        assertCorrupt(model, "CRC")
    }

    @Test
    fun brokenCentralDirectoryIsAClearError() {
        val model = Fixtures.modelWith(Fixtures.metadataJson())
        val cd = String(model, Charsets.ISO_8859_1).indexOf("PK\u0001\u0002")
        model[cd + 3] = 9
        assertCorrupt(model, "central directory")
    }

    @Test
    fun localHeaderOffsetOutsideTheFileIsAClearError() {
        val model = Fixtures.modelWith(Fixtures.metadataJson())
        val cd = String(model, Charsets.ISO_8859_1).indexOf("PK\u0001\u0002")
        model[cd + 42] = 0xF0.toByte(); model[cd + 43] = 0x7F
        assertCorrupt(model, "outside the file")
    }

    @Test
    fun invalidJsonIsReportedAsCorrupt() {
        assertCorrupt(Fixtures.modelWith("{\"schema\": \"edgecnn.metadata/1\", "), "corrupt", "end of JSON")
    }

    @Test
    fun nonUtf8JsonIsReportedAsCorrupt() {
        // '{', a lone UTF-8 lead byte, '}'
        val model = Fixtures.fakeFlatbuffer() + Fixtures.storedZip(
            mapOf(Metadata.JSON_NAME to byteArrayOf(0x7B, 0xC3.toByte(), 0x7D)))
        assertCorrupt(model, "UTF-8")
    }

    @Test
    fun trailingCommentAfterTheEndRecordIsTolerated() {
        val model = Fixtures.modelWith(Fixtures.metadataJson())
        // Zip comment length is the last field of the end record; append a 5-byte comment.
        model[model.size - 2] = 5
        val withComment = model + "hello".toByteArray()
        assertEquals("detect", Metadata.read(withComment)!!.task)
    }
}
