package org.edgecnn.core

/**
 * How an image was fitted into the model input: `model = image * scale + pad`.
 *
 * [fit] computes it exactly like `Preprocessor.fit` in `edgecnn/runtime/preprocess.py`,
 * including Python's round-half-to-even for the resized size, so boxes map back to the same
 * pixels on the phone and on the workstation.
 */
class Letterbox(
    val scaleX: Double,
    val scaleY: Double,
    val padX: Double,
    val padY: Double,
    val srcWidth: Int,
    val srcHeight: Int,
    /** Size of the resized image inside the model input (before padding). */
    val resizedWidth: Int,
    val resizedHeight: Int
) {
    /** Model-input x -> original image x, clipped to the image (docs/FORMAT.md). */
    fun toImageX(x: Double): Double = clip((x - padX) / scaleX, srcWidth.toDouble())

    fun toImageY(y: Double): Double = clip((y - padY) / scaleY, srcHeight.toDouble())

    private fun clip(v: Double, hi: Double): Double = if (v < 0.0) 0.0 else if (v > hi) hi else v

    companion object {
        /**
         * Fit a [srcWidth] x [srcHeight] image into a [dstWidth] x [dstHeight] model input.
         *
         * @param resize `stretch` (no padding, aspect ratio not kept) or `letterbox` (centred,
         *   aspect ratio kept, padded).
         */
        fun fit(srcWidth: Int, srcHeight: Int, dstWidth: Int, dstHeight: Int, resize: String): Letterbox {
            require(srcWidth > 0 && srcHeight > 0) { "image size ${srcWidth}x$srcHeight is empty" }
            if (resize == "stretch") {
                return Letterbox(dstWidth.toDouble() / srcWidth, dstHeight.toDouble() / srcHeight,
                    0.0, 0.0, srcWidth, srcHeight, dstWidth, dstHeight)
            }
            require(resize == "letterbox") { "unknown resize mode '$resize'" }
            val r = Math.min(dstWidth.toDouble() / srcWidth, dstHeight.toDouble() / srcHeight)
            val nw = Math.max(1, Math.rint(srcWidth * r).toInt())
            val nh = Math.max(1, Math.rint(srcHeight * r).toInt())
            val px = Math.floorDiv(dstWidth - nw, 2)
            val py = Math.floorDiv(dstHeight - nh, 2)
            return Letterbox(nw.toDouble() / srcWidth, nh.toDouble() / srcHeight, px.toDouble(), py.toDouble(),
                srcWidth, srcHeight, nw, nh)
        }
    }
}
