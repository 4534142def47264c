package org.edgecnn.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import java.io.ByteArrayOutputStream
import java.io.File
import java.util.zip.CRC32
import java.util.zip.ZipEntry
import java.util.zip.ZipOutputStream

/** Paths of the shared golden files, passed by test.sh as system properties. */
object Fixtures {
    private fun file(property: String): File {
        val path = System.getProperty(property)
            ?: throw IllegalStateException("system property '$property' is not set (run android_demo/core/test.sh)")
        val f = File(path)
        if (!f.isFile) throw IllegalStateException("$property=$path does not exist")
        return f
    }

    val golden: Map<String, Any?> by lazy { obj(Json.parse(file("edgecnn.golden").readText())) }
    val tinyModel: ByteArray by lazy { file("edgecnn.tinyModel").readBytes() }
    val tinyExpect: Map<String, Any?> by lazy { obj(Json.parse(file("edgecnn.tinyJson").readText())) }
    val trackGolden: Map<String, Any?> by lazy { obj(Json.parse(file("edgecnn.trackGolden").readText())) }
    val decodersGolden: Map<String, Any?> by lazy { obj(Json.parse(file("edgecnn.decodersGolden").readText())) }

    @Suppress("UNCHECKED_CAST")
    fun obj(v: Any?): Map<String, Any?> = v as Map<String, Any?>

    @Suppress("UNCHECKED_CAST")
    fun list(v: Any?): List<Any?> = v as List<Any?>

    fun objects(v: Any?): List<Map<String, Any?>> = list(v).map { obj(it) }

    fun num(v: Any?): Double = v as Double

    fun int(v: Any?): Int = (v as Double).toInt()

    fun floats(v: Any?): FloatArray = list(v).let { l -> FloatArray(l.size) { (l[it] as Double).toFloat() } }

    fun bytes(v: Any?): ByteArray = list(v).let { l -> ByteArray(l.size) { (l[it] as Double).toInt().toByte() } }

    fun ints(v: Any?): IntArray = list(v).let { l -> IntArray(l.size) { (l[it] as Double).toInt() } }

    fun strings(v: Any?): List<String> = list(v).map { it as String }

    /**
     * Run [block] and check that it throws an [E] whose message contains every needle.
     *
     * @param what names the input in the failure message.
     */
    inline fun <reified E : Throwable> assertThrows(what: String, vararg needles: String, block: () -> Unit) {
        try {
            block()
        } catch (e: Throwable) {
            if (e !is E) throw AssertionError("$what: expected ${E::class.java.simpleName}, got $e", e)
            for (n in needles) {
                if (!e.message!!.contains(n)) throw AssertionError("$what: '${e.message}' should mention '$n'")
            }
            return
        }
        throw AssertionError("$what: expected ${E::class.java.simpleName}, nothing was thrown")
    }

    /**
     * A golden classify case (`output`, `activation`, `labels`, `top_k`, `top`): dequantization
     * bit for bit, then [Classify]'s top-k classes exactly and scores within [scoreTol].
     */
    fun assertTopKMatches(case: Map<String, Any?>, scoreTol: Double) {
        val name = case["name"] as String
        val out = obj(case["output"])
        val raw = if (out["dtype"] == "int8") dequantizeInt8(bytes(out["raw"]), Quant(num(out["scale"]), int(out["zero_point"])))
        else floats(out["raw"])
        assertArrayEquals("$name dequantized", floats(out["dequantized"]), raw, 0f)
        val top = Classify.topK(Classify.scores(raw, case["activation"] as String), strings(case["labels"]), int(case["top_k"]))
        val expected = objects(case["top"])
        assertEquals("$name: top-k size", expected.size, top.size)
        for (i in expected.indices) {
            assertEquals("$name rank $i index", int(expected[i]["index"]), top[i].index)
            assertEquals("$name rank $i label", expected[i]["label"], top[i].label)
            assertEquals("$name rank $i score", num(expected[i]["score"]), top[i].score.toDouble(), scoreTol)
        }
    }

    /** A stored (uncompressed) zip built with java.util.zip, to test our reader against. */
    fun storedZip(entries: Map<String, ByteArray>, deflate: Set<String> = emptySet()): ByteArray {
        val bytes = ByteArrayOutputStream()
        ZipOutputStream(bytes).use { zip ->
            for ((name, data) in entries) {
                val e = ZipEntry(name)
                if (name in deflate) {
                    e.method = ZipEntry.DEFLATED
                } else {
                    e.method = ZipEntry.STORED
                    e.size = data.size.toLong()
                    e.compressedSize = data.size.toLong()
                    val crc = CRC32()
                    crc.update(data)
                    e.crc = crc.value
                }
                zip.putNextEntry(e)
                zip.write(data)
                zip.closeEntry()
            }
        }
        return bytes.toByteArray()
    }

    /** A fake flatbuffer: the TFL3 identifier plus filler, enough for the readers here. */
    fun fakeFlatbuffer(size: Int = 64): ByteArray {
        val b = ByteArray(size) { (it * 7).toByte() }
        System.arraycopy("TFL3".toByteArray(), 0, b, 4, 4)
        return b
    }

    fun metadataJson(task: String = "detect", extra: String = ""): String = """
        {"schema": "edgecnn.metadata/1", "task": "$task", "labels": ["a", "b"],
         "input": {"height": 64, "width": 48, "channels": 3, "color": "RGB", "resize": "letterbox",
                   "mean": [127.5], "std": [127.5], "pad_value": 114},
         "decoder": {"type": "anchor_free_ltrb", "strides": [8, 16, 32], "box_output": 1, "score_output": 0,
                     "score_threshold": 0.3, "iou_threshold": 0.5, "max_detections": 10}$extra}
    """.trimIndent()

    fun modelWith(json: String): ByteArray = fakeFlatbuffer() +
        storedZip(linkedMapOf(Metadata.JSON_NAME to json.toByteArray(Charsets.UTF_8), Metadata.LABELS_NAME to "a\nb\n".toByteArray()))
}
