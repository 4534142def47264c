package org.edgecnn.core

import java.util.zip.CRC32

/** The model's metadata bundle is present but cannot be used (corrupt zip, bad JSON, bad values). */
class MetadataException(message: String) : Exception(message)

/**
 * Reader for the zip archive edgecnn appends to a `.tflite` (docs/FORMAT.md).
 *
 * The archive is found the way `edgecnn/runtime/metadata.py: split_bundle` finds it: the last
 * end-of-central-directory record in the final 64 KiB, whose central-directory size and offset
 * locate the archive's first byte. Only *stored* entries are read (edgecnn never deflates), so
 * no inflater is needed and every byte is checked against the entry's CRC-32.
 */
object Bundle {
    private const val EOCD_SIZE = 22
    private const val EOCD_SIG = 0x06054b50
    private const val CENTRAL_SIG = 0x02014b50
    private const val LOCAL_SIG = 0x04034b50
    private const val SEARCH_WINDOW = 65536

    /** Where the appended archive starts, or -1 when the file carries none (a plain model). */
    fun archiveStart(data: ByteArray): Int {
        val pos = findEocd(data)
        if (pos < 0) return -1
        val sizeCd = u32(data, pos + 12)
        val offsetCd = u32(data, pos + 16)
        val start = pos.toLong() - sizeCd - offsetCd
        if (start <= 0 || start + 4 > data.size || u32(data, start.toInt()) != LOCAL_SIG.toLong()) return -1
        return start.toInt()
    }

    /** The flatbuffer part of the file (the whole file when no archive is appended). */
    fun flatbuffer(data: ByteArray): ByteArray {
        val start = archiveStart(data)
        return if (start < 0) data else data.copyOfRange(0, start)
    }

    /**
     * All entries of the appended archive by name, or null when there is no archive.
     *
     * @throws MetadataException when an archive is there but is damaged or uses features an
     *   edgecnn bundle never uses (compression, zip64, encryption).
     */
    fun entries(data: ByteArray): Map<String, ByteArray>? {
        val eocd = findEocd(data)
        if (eocd < 0) return null
        val start = archiveStart(data)
        if (start < 0) return null
        val count = u16(data, eocd + 10)
        val sizeCd = u32(data, eocd + 12)
        var p = (eocd - sizeCd).toInt()
        val out = LinkedHashMap<String, ByteArray>()
        for (i in 0 until count) {
            need(data, p, 46, "central directory entry $i")
            if (u32(data, p) != CENTRAL_SIG.toLong()) throw MetadataException("metadata bundle is corrupt: bad central directory entry $i")
            val flags = u16(data, p + 8)
            val method = u16(data, p + 10)
            val crc = u32(data, p + 16)
            val compressed = u32(data, p + 20)
            val size = u32(data, p + 24)
            val nameLen = u16(data, p + 28)
            val extraLen = u16(data, p + 30)
            val commentLen = u16(data, p + 32)
            val localOffset = u32(data, p + 42)
            need(data, p + 46, nameLen, "entry name")
            val name = String(data, p + 46, nameLen, Charsets.UTF_8)
            if (flags and 1 != 0) throw MetadataException("metadata bundle entry '$name' is encrypted")
            if (compressed == 0xFFFFFFFFL || size == 0xFFFFFFFFL || localOffset == 0xFFFFFFFFL) {
                throw MetadataException("metadata bundle entry '$name' uses zip64, which edgecnn never writes")
            }
            if (method != 0) {
                throw MetadataException("metadata bundle entry '$name' is compressed (method $method); edgecnn bundles are stored")
            }
            if (compressed != size) throw MetadataException("metadata bundle entry '$name' has inconsistent sizes")
            val local = start.toLong() + localOffset
            if (local + 30 > data.size) throw MetadataException("metadata bundle is corrupt: entry '$name' points outside the file")
            val l = local.toInt()
            if (u32(data, l) != LOCAL_SIG.toLong()) throw MetadataException("metadata bundle is corrupt: bad local header for '$name'")
            val dataStart = l.toLong() + 30 + u16(data, l + 26) + u16(data, l + 28)
            if (dataStart + size > data.size) throw MetadataException("metadata bundle is corrupt: entry '$name' is truncated")
            val bytes = data.copyOfRange(dataStart.toInt(), (dataStart + size).toInt())
            val check = CRC32()
            check.update(bytes)
            if (check.value != crc) throw MetadataException("metadata bundle is corrupt: CRC mismatch in '$name'")
            out[name] = bytes
            p += 46 + nameLen + extraLen + commentLen
        }
        return out
    }

    // The EOCD record is followed only by its comment (< 64 KiB): search backwards there. Like
    // Python's split_bundle, the last signature wins, and one too close to the end means "none".
    private fun findEocd(data: ByteArray): Int {
        val lowest = Math.max(0, data.size - SEARCH_WINDOW - EOCD_SIZE)
        var pos = data.size - 4
        while (pos >= lowest) {
            if (data[pos] == 0x50.toByte() && data[pos + 1] == 0x4b.toByte() &&
                data[pos + 2] == 0x05.toByte() && data[pos + 3] == 0x06.toByte()) {
                return if (pos + EOCD_SIZE <= data.size) pos else -1
            }
            pos--
        }
        return -1
    }

    private fun need(data: ByteArray, at: Int, n: Int, what: String) {
        if (at < 0 || at.toLong() + n > data.size) throw MetadataException("metadata bundle is corrupt: $what is truncated")
    }

    internal fun u16(b: ByteArray, at: Int): Int =
        (b[at].toInt() and 0xFF) or ((b[at + 1].toInt() and 0xFF) shl 8)

    internal fun u32(b: ByteArray, at: Int): Long =
        ((b[at].toLong() and 0xFF) or ((b[at + 1].toLong() and 0xFF) shl 8) or
            ((b[at + 2].toLong() and 0xFF) shl 16) or ((b[at + 3].toLong() and 0xFF) shl 24))
}
