package org.edgecnn.core

import org.junit.Assert.assertEquals
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test

class JsonTest {
    private fun bad(text: String, needle: String) {
        try {
            Json.parse(text)
            fail("'$text' should not parse")
        } catch (e: JsonException) {
            assertTrue("'${e.message}' should mention '$needle'", e.message!!.contains(needle))
        }
    }

    @Test
    fun parsesAllValueKinds() {
        val v = Json.parse(""" { "a": [1, -2.5, 3e2, 0, -0.0, 1E-2], "b": {"c": null, "d": true, "e": false}, "s": "x" } """)
        val m = Fixtures.obj(v)
        assertEquals(listOf(1.0, -2.5, 300.0, 0.0, -0.0, 0.01), m["a"])
        val b = Fixtures.obj(m["b"])
        assertNull(b["c"])
        assertTrue(b.containsKey("c"))
        assertEquals(true, b["d"])
        assertEquals(false, b["e"])
        assertEquals("x", m["s"])
        assertEquals(listOf("a", "b", "s"), m.keys.toList())
        assertEquals(emptyMap<String, Any?>(), Json.parse("{}"))
        assertEquals(emptyList<Any?>(), Json.parse(" [ ] "))
        assertEquals(42.0, Json.parse("42"))
    }

    @Test
    fun decodesEscapesAndSurrogatePairs() {
        assertEquals("q\"b\\s/\b\u000C\n\r\t", Json.parse("\"q\\\"b\\\\s\\/\\b\\f\\n\\r\\t\""))
        assertEquals("é", Json.parse("\"\\u00e9\""))
        assertEquals("\uD83D\uDE00", Json.parse("\"\\ud83d\\ude00\""))
        assertEquals("ünïcode", Json.parse("\"ünïcode\""))
    }

    @Test
    fun acceptsPythonNonFiniteNumbers() {
        assertTrue((Json.parse("NaN") as Double).isNaN())
        assertEquals(Double.POSITIVE_INFINITY, Json.parse("Infinity"))
        assertEquals(listOf(Double.NEGATIVE_INFINITY), Json.parse("[-Infinity]"))
    }

    @Test
    fun rejectsMalformedDocuments() {
        bad("", "end of JSON")
        bad("{\"a\": 1,}", "quoted object key")
        bad("[1, 2,]", "unexpected character")
        bad("[1 2]", "expected ','")
        bad("{\"a\" 1}", "':'")
        bad("{'a': 1}", "quoted object key")
        bad("01", "leading zero")
        bad("1.", "digit expected")
        bad("1e", "exponent")
        bad("-", "truncated")
        bad("\"abc", "unterminated string")
        bad("\"a\nb\"", "control character")
        bad("\"\\x\"", "invalid escape")
        bad("\"\\u12\"", "\\u escape")
        bad("{} x", "after the JSON value")
        bad("tru", "unexpected character")
        bad("[", "end of JSON")
    }

    @Test
    fun refusesHostileNestingInsteadOfOverflowingTheStack() {
        val deep = "[".repeat(100000) + "]".repeat(100000)
        bad(deep, "nested deeper")
        val ok = "[".repeat(Json.MAX_DEPTH) + "]".repeat(Json.MAX_DEPTH)
        assertTrue(Json.parse(ok) is List<*>)
    }

    @Test
    fun errorOffsetPointsAtTheProblem() {
        try {
            Json.parse("[1, ?]")
            fail()
        } catch (e: JsonException) {
            assertEquals(4, e.offset)
        }
    }
}
