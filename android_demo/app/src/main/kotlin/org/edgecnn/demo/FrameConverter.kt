package org.edgecnn.demo

import android.graphics.Bitmap
import android.graphics.Canvas
import android.graphics.Color
import android.graphics.Matrix
import android.graphics.Paint
import androidx.camera.core.ImageProxy
import org.edgecnn.core.Letterbox

/**
 * Camera frame (RGBA_8888 [ImageProxy]) -> upright model-size ARGB pixels, in one bitmap draw:
 * rotation to the display orientation, letterbox (or stretch) resize and the grey padding are
 * folded into a single [Matrix]. The geometry comes from [Letterbox.fit], the same rounding as the
 * Python runtime, so boxes map back identically.
 */
class FrameConverter(private val width: Int, private val height: Int, private val resize: String, padValue: Int) {
    private val modelBitmap = Bitmap.createBitmap(width, height, Bitmap.Config.ARGB_8888)
    private val canvas = Canvas(modelBitmap)
    private val paint = Paint(Paint.FILTER_BITMAP_FLAG)
    private val matrix = Matrix()
    private val padColor = Color.rgb(padValue, padValue, padValue)
    private var frame: Bitmap? = null

    /** Model-size ARGB pixels of the last [convert] call (as `Bitmap.getPixels` returns them). */
    val pixels = IntArray(width * height)

    /** Size of the upright frame of the last [convert] call, the space boxes are reported in. */
    var uprightWidth = 0
        private set
    var uprightHeight = 0
        private set

    fun convert(image: ImageProxy): Letterbox {
        val src = toBitmap(image)
        val rotation = image.imageInfo.rotationDegrees
        val sideways = rotation % 180 != 0
        uprightWidth = if (sideways) src.height else src.width
        uprightHeight = if (sideways) src.width else src.height
        val box = Letterbox.fit(uprightWidth, uprightHeight, width, height, resize)
        matrix.reset()
        matrix.postTranslate(-src.width / 2f, -src.height / 2f)
        matrix.postRotate(rotation.toFloat())
        matrix.postScale(box.scaleX.toFloat(), box.scaleY.toFloat())
        matrix.postTranslate(box.padX.toFloat() + box.resizedWidth / 2f, box.padY.toFloat() + box.resizedHeight / 2f)
        canvas.drawColor(padColor)
        canvas.drawBitmap(src, matrix, paint)
        modelBitmap.getPixels(pixels, 0, width, 0, 0, width, height)
        return box
    }

    // RGBA_8888 frames without row padding are copied into one reused bitmap; padded rows take
    // CameraX's converter (allocates, but only on devices that pad).
    private fun toBitmap(image: ImageProxy): Bitmap {
        val plane = image.planes[0]
        if (plane.pixelStride != 4 || plane.rowStride != image.width * 4) return image.toBitmap()
        var bmp = frame
        if (bmp == null || bmp.width != image.width || bmp.height != image.height) {
            bmp = Bitmap.createBitmap(image.width, image.height, Bitmap.Config.ARGB_8888)
            frame = bmp
        }
        plane.buffer.rewind()
        bmp!!.copyPixelsFromBuffer(plane.buffer)
        return bmp
    }
}
