package org.edgecnn.core

/** Thrown for text that is not valid JSON; [offset] is the character where parsing stopped. */
class JsonException(message: String, val offset: Int) : Exception("$message at character $offset")

/**
 * A small strict JSON reader (RFC 8259), so `core` needs no library: `org.json` exists on
 * Android but not on a plain JVM, and the metadata document is tiny.
 *
 * Values map to Kotlin as: object -> `Map<String, Any?>` (insertion ordered), array ->
 * `List<Any?>`, string -> `String`, number -> `Double`, `true`/`false` -> `Boolean`,
 * `null` -> `null`. `NaN`, `Infinity` and `-Infinity` are accepted because Python's
 * `json.dumps` writes them. Nesting deeper than [MAX_DEPTH] is rejected instead of
 * overflowing the stack on a hostile file.
 */
object Json {
    const val MAX_DEPTH = 64

    fun parse(text: String): Any? {
        val reader = Reader(text)
        reader.skipSpace()
        val value = reader.value(0)
        reader.skipSpace()
        if (reader.pos != text.length) throw JsonException("unexpected text after the JSON value", reader.pos)
        return value
    }

    private class Reader(val s: String) {
        var pos = 0

        fun fail(message: String): Nothing = throw JsonException(message, pos)

        fun skipSpace() {
            while (pos < s.length) {
                val c = s[pos]
                if (c == ' ' || c == '\t' || c == '\n' || c == '\r') pos++ else return
            }
        }

        fun value(depth: Int): Any? {
            if (depth > MAX_DEPTH) fail("JSON nested deeper than $MAX_DEPTH levels")
            if (pos >= s.length) fail("unexpected end of JSON")
            val c = s[pos]
            return when {
                c == '{' -> obj(depth)
                c == '[' -> array(depth)
                c == '"' -> string()
                c == '-' || (c in '0'..'9') -> number()
                s.startsWith("true", pos) -> { pos += 4; true }
                s.startsWith("false", pos) -> { pos += 5; false }
                s.startsWith("null", pos) -> { pos += 4; null }
                s.startsWith("NaN", pos) -> { pos += 3; Double.NaN }
                s.startsWith("Infinity", pos) -> { pos += 8; Double.POSITIVE_INFINITY }
                else -> fail("unexpected character '${c}'")
            }
        }

        fun obj(depth: Int): Map<String, Any?> {
            pos++ // '{'
            val out = LinkedHashMap<String, Any?>()
            skipSpace()
            if (pos < s.length && s[pos] == '}') { pos++; return out }
            while (true) {
                skipSpace()
                if (pos >= s.length) fail("unexpected end of JSON")
                if (s[pos] != '"') fail("expected a quoted object key")
                val key = string()
                skipSpace()
                if (pos >= s.length || s[pos] != ':') fail("expected ':' after object key")
                pos++
                skipSpace()
                out[key] = value(depth + 1)
                skipSpace()
                if (pos >= s.length) fail("unterminated object")
                when (s[pos]) {
                    ',' -> pos++
                    '}' -> { pos++; return out }
                    else -> fail("expected ',' or '}' in object")
                }
            }
        }

        fun array(depth: Int): List<Any?> {
            pos++ // '['
            val out = ArrayList<Any?>()
            skipSpace()
            if (pos < s.length && s[pos] == ']') { pos++; return out }
            while (true) {
                skipSpace()
                out.add(value(depth + 1))
                skipSpace()
                if (pos >= s.length) fail("unterminated array")
                when (s[pos]) {
                    ',' -> pos++
                    ']' -> { pos++; return out }
                    else -> fail("expected ',' or ']' in array")
                }
            }
        }

        fun string(): String {
            pos++ // opening quote
            val sb = StringBuilder()
            while (true) {
                if (pos >= s.length) fail("unterminated string")
                val c = s[pos]
                when {
                    c == '"' -> { pos++; return sb.toString() }
                    c == '\\' -> {
                        if (pos + 1 >= s.length) fail("unterminated escape")
                        val e = s[pos + 1]
                        pos += 2
                        when (e) {
                            '"' -> sb.append('"')
                            '\\' -> sb.append('\\')
                            '/' -> sb.append('/')
                            'b' -> sb.append('\b')
                            'f' -> sb.append('\u000C')
                            'n' -> sb.append('\n')
                            'r' -> sb.append('\r')
                            't' -> sb.append('\t')
                            'u' -> sb.append(hex4())
                            else -> { pos -= 1; fail("invalid escape '\\$e'") }
                        }
                    }
                    c < ' ' -> fail("control character in string")
                    else -> { sb.append(c); pos++ }
                }
            }
        }

        // Surrogate pairs arrive as two \\u escapes; appending both chars rebuilds the code point.
        fun hex4(): Char {
            if (pos + 4 > s.length) fail("truncated \\u escape")
            var v = 0
            for (i in 0 until 4) {
                val d = Character.digit(s[pos + i], 16)
                if (d < 0) fail("invalid \\u escape")
                v = v * 16 + d
            }
            pos += 4
            return v.toChar()
        }

        fun number(): Double {
            val start = pos
            if (s[pos] == '-') {
                pos++
                if (s.startsWith("Infinity", pos)) { pos += 8; return Double.NEGATIVE_INFINITY }
            }
            if (pos >= s.length) fail("truncated number")
            if (s[pos] == '0') {
                pos++
                if (pos < s.length && s[pos] in '0'..'9') fail("leading zero in number")
            } else if (s[pos] in '1'..'9') {
                while (pos < s.length && s[pos] in '0'..'9') pos++
            } else {
                fail("invalid number")
            }
            if (pos < s.length && s[pos] == '.') {
                pos++
                if (pos >= s.length || s[pos] !in '0'..'9') fail("digit expected after '.'")
                while (pos < s.length && s[pos] in '0'..'9') pos++
            }
            if (pos < s.length && (s[pos] == 'e' || s[pos] == 'E')) {
                pos++
                if (pos < s.length && (s[pos] == '+' || s[pos] == '-')) pos++
                if (pos >= s.length || s[pos] !in '0'..'9') fail("digit expected in exponent")
                while (pos < s.length && s[pos] in '0'..'9') pos++
            }
            return s.substring(start, pos).toDouble()
        }
    }
}

/** Typed access to parsed JSON that names the offending key instead of a ClassCastException. */
internal object JsonAccess {
    fun obj(value: Any?, what: String): Map<String, Any?> {
        if (value !is Map<*, *>) throw MetadataException("$what must be a JSON object")
        @Suppress("UNCHECKED_CAST")
        return value as Map<String, Any?>
    }

    fun string(doc: Map<String, Any?>, key: String, default: String? = null): String {
        val v = doc[key] ?: return default ?: throw MetadataException("metadata '$key' is missing")
        if (v !is String) throw MetadataException("metadata '$key' must be a string")
        return v
    }

    fun number(doc: Map<String, Any?>, key: String, default: Double? = null): Double {
        val v = doc[key] ?: return default ?: throw MetadataException("metadata '$key' is missing")
        if (v !is Double) throw MetadataException("metadata '$key' must be a number")
        return v
    }

    fun int(doc: Map<String, Any?>, key: String, default: Int? = null): Int {
        val v = doc[key] ?: return default ?: throw MetadataException("metadata '$key' is missing")
        return toInt(v, key)
    }

    fun toInt(v: Any?, key: String): Int {
        if (v !is Double || v != Math.floor(v) || Math.abs(v) > Int.MAX_VALUE) {
            throw MetadataException("metadata '$key' must be an integer, got $v")
        }
        return v.toInt()
    }

    /** A number or a list of numbers (Python accepts both for mean/std). */
    fun numbers(doc: Map<String, Any?>, key: String, default: DoubleArray): DoubleArray {
        val v = doc[key] ?: return default
        if (v is Double) return doubleArrayOf(v)
        if (v !is List<*> || v.isEmpty()) throw MetadataException("metadata '$key' must be a number or a non-empty list of numbers")
        return DoubleArray(v.size) { i ->
            val x = v[i]
            if (x !is Double) throw MetadataException("metadata '$key' must hold numbers only")
            x
        }
    }

    fun ints(doc: Map<String, Any?>, key: String, default: IntArray): IntArray {
        val v = doc[key] ?: return default
        if (v !is List<*> || v.isEmpty()) throw MetadataException("metadata '$key' must be a non-empty list of integers")
        return IntArray(v.size) { i -> toInt(v[i], key) }
    }
}
