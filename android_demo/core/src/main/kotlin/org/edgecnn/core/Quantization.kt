package org.edgecnn.core

import java.nio.ByteBuffer
import java.nio.ByteOrder

/** Element type of a model input or output tensor. */
enum class TensorType(val bytes: Int) { FLOAT32(4), INT8(1), UINT8(1) }

/**
 * Affine quantization of a tensor, `real = (q - zeroPoint) * scale`; `scale == 0` means float.
 *
 * Always take these from the interpreter's tensor (`Tensor.quantizationParams()`), never
 * from the metadata's informational `io` section.
 */
class Quant(val scale: Double, val zeroPoint: Int) {
    /** Convenience for the interpreter's `QuantizationParams`, whose scale is a float. */
    constructor(scale: Float, zeroPoint: Int) : this(scale.toDouble(), zeroPoint)

    val quantized: Boolean get() = scale != 0.0

    private val scale32 = scale.toFloat()

    /** float32 value of one raw element, computed in float32 exactly like the Python runtime. */
    fun dequantize(q: Int): Float = (q.toFloat() - zeroPoint.toFloat()) * scale32

    companion object {
        val FLOAT = Quant(0.0, 0)
    }
}

/**
 * Raw model output as float32, dequantizing int8 / uint8 tensors.
 *
 * @param buffer the output buffer positioned at its start (native byte order for float32).
 * @param count number of elements.
 */
fun dequantize(buffer: ByteBuffer, count: Int, type: TensorType, quant: Quant): FloatArray {
    val out = FloatArray(count)
    val b = buffer.duplicate().order(ByteOrder.nativeOrder())
    when (type) {
        TensorType.FLOAT32 -> b.asFloatBuffer().get(out)
        TensorType.INT8 -> {
            val q = if (quant.quantized) quant else Quant(1.0, 0)
            for (i in 0 until count) out[i] = q.dequantize(b.get(i).toInt())
        }
        TensorType.UINT8 -> {
            val q = if (quant.quantized) quant else Quant(1.0, 0)
            for (i in 0 until count) out[i] = q.dequantize(b.get(i).toInt() and 0xFF)
        }
    }
    return out
}

/** int8 raw values (as the interpreter hands them over) -> float32. */
fun dequantizeInt8(raw: ByteArray, quant: Quant): FloatArray =
    FloatArray(raw.size) { quant.dequantize(raw[it].toInt()) }

/**
 * Per-channel 256-entry tables turning a pixel value straight into the model's input element:
 * normalization `(p - mean) / std` and input quantization folded together, as in
 * `build_lut` of `edgecnn/runtime/preprocess.py` (float64 arithmetic, round half to even,
 * clipped to the integer range).
 */
class InputLut private constructor(
    val channels: Int,
    val type: TensorType,
    /** `[channel][pixel]` for float inputs. */
    val floats: Array<FloatArray>?,
    /** `[channel][pixel]` raw bytes for int8 / uint8 inputs. */
    val bytes: Array<ByteArray>?
) {
    /** Integer value of one entry (int8 as -128..127, uint8 as 0..255); for tests and tools. */
    fun intValue(channel: Int, pixel: Int): Int {
        val b = bytes!![channel][pixel].toInt()
        return if (type == TensorType.UINT8) b and 0xFF else b
    }

    companion object {
        fun build(spec: InputSpec, type: TensorType, quant: Quant): InputLut {
            val c = spec.channels
            if (type == TensorType.FLOAT32) {
                val t = Array(c) { ch -> FloatArray(256) { p -> normalized(spec, ch, p).toFloat() } }
                return InputLut(c, type, t, null)
            }
            val lo = if (type == TensorType.INT8) -128 else 0
            val hi = if (type == TensorType.INT8) 127 else 255
            val scale = quant.scale
            val t = Array(c) { ch ->
                ByteArray(256) { p ->
                    val x = normalized(spec, ch, p)
                    // An integer input without quantization takes the normalized value as is
                    // (numpy's astype truncates toward zero).
                    val q = if (quant.quantized) Math.rint(x / scale + quant.zeroPoint) else x
                    val clipped = Math.min(hi.toDouble(), Math.max(lo.toDouble(), q))
                    clipped.toInt().toByte()
                }
            }
            return InputLut(c, type, null, t)
        }

        private fun normalized(spec: InputSpec, ch: Int, p: Int): Double = (p - spec.meanOf(ch)) / spec.stdOf(ch)
    }
}

/**
 * Writes an upright, already resized (and padded) ARGB image into the model's input buffer,
 * converting colour order through the look-up table.
 *
 * @param pixels `width * height` ARGB ints, as `Bitmap.getPixels` returns them.
 * @param color the model's channel order: `RGB`, `BGR` or `GRAY`.
 */
fun writeInput(pixels: IntArray, width: Int, height: Int, color: String, lut: InputLut, out: ByteBuffer) {
    val n = width * height
    require(pixels.size >= n) { "pixel array holds ${pixels.size} values, need $n" }
    out.order(ByteOrder.nativeOrder())
    out.rewind()
    val gray = color == "GRAY"
    val bgr = color == "BGR"
    if (gray && lut.channels != 1) throw IllegalArgumentException("GRAY input needs a 1-channel table")
    if (!gray && lut.channels != 3) throw IllegalArgumentException("$color input needs a 3-channel table")
    val f = lut.floats
    val b = lut.bytes
    for (i in 0 until n) {
        val px = pixels[i]
        val r = (px shr 16) and 0xFF
        val g = (px shr 8) and 0xFF
        val bl = px and 0xFF
        if (gray) {
            val y = grayOf(r, g, bl)
            if (f != null) out.putFloat(f[0][y]) else out.put(b!![0][y])
            continue
        }
        val c0 = if (bgr) bl else r
        val c2 = if (bgr) r else bl
        if (f != null) {
            out.putFloat(f[0][c0]); out.putFloat(f[1][g]); out.putFloat(f[2][c2])
        } else {
            out.put(b!![0][c0]); out.put(b[1][g]); out.put(b[2][c2])
        }
    }
    out.rewind()
}

/** OpenCV's RGB->GRAY for 8-bit images: fixed-point BT.601 weights with rounding. */
fun grayOf(r: Int, g: Int, b: Int): Int = (r * 4899 + g * 9617 + b * 1868 + (1 shl 13)) shr 14
