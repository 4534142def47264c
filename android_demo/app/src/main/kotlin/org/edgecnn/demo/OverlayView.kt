package org.edgecnn.demo

import android.content.Context
import android.graphics.Canvas
import android.graphics.Color
import android.graphics.Paint
import android.graphics.RectF
import android.util.AttributeSet
import android.view.View
import java.util.Locale

/**
 * Draws detections (boxes + labels) or the top-k classes over the camera preview, and the
 * timing line (inference ms, FPS). Boxes arrive in upright-frame pixels and are mapped the way
 * `PreviewView`'s default FILL_CENTER scale type shows the frame.
 */
class OverlayView(context: Context, attrs: AttributeSet?) : View(context, attrs) {
    private var result: FrameResult? = null
    private var header = ""
    private var fps = 0.0
    private val density = resources.displayMetrics.density
    private val boxPaint = Paint().apply { style = Paint.Style.STROKE; strokeWidth = 3f * density; isAntiAlias = true }
    private val labelBg = Paint().apply { style = Paint.Style.FILL }
    private val text = Paint().apply { color = Color.WHITE; textSize = 14f * density; isAntiAlias = true }
    private val panel = Paint().apply { color = Color.argb(150, 0, 0, 0) }
    private val rect = RectF()
    private val palette = intArrayOf(
        Color.rgb(230, 25, 75), Color.rgb(60, 180, 75), Color.rgb(255, 225, 25), Color.rgb(0, 130, 200),
        Color.rgb(245, 130, 48), Color.rgb(145, 30, 180), Color.rgb(70, 240, 240), Color.rgb(240, 50, 230)
    )

    /** Show one frame's result; call on the main thread. */
    fun show(result: FrameResult, header: String, fps: Double) {
        this.result = result
        this.header = header
        this.fps = fps
        invalidate()
    }

    fun clear() {
        result = null
        invalidate()
    }

    override fun onDraw(canvas: Canvas) {
        super.onDraw(canvas)
        val r = result ?: return
        if (r.frameWidth > 0 && r.frameHeight > 0) {
            val scale = Math.max(width.toFloat() / r.frameWidth, height.toFloat() / r.frameHeight)
            val dx = (width - r.frameWidth * scale) / 2f
            val dy = (height - r.frameHeight * scale) / 2f
            for (d in r.detections) {
                val color = palette[d.category.index % palette.size]
                boxPaint.color = color
                rect.set((d.box.left * scale + dx).toFloat(), (d.box.top * scale + dy).toFloat(),
                    (d.box.right * scale + dx).toFloat(), (d.box.bottom * scale + dy).toFloat())
                canvas.drawRect(rect, boxPaint)
                val label = String.format(Locale.US, "%s %.2f", d.category.label, d.category.score)
                val tw = text.measureText(label)
                val th = text.textSize
                val top = Math.max(0f, rect.top - th - 4 * density)
                labelBg.color = color
                canvas.drawRect(rect.left, top, rect.left + tw + 8 * density, top + th + 4 * density, labelBg)
                canvas.drawText(label, rect.left + 4 * density, top + th, text)
            }
        }
        val lines = ArrayList<String>()
        lines.add(header)
        lines.add(String.format(Locale.US, "inference %.1f ms  pre %.1f ms  post %.1f ms  %.1f FPS",
            r.inferenceMs, r.preprocessMs, r.postprocessMs, fps))
        for ((rank, c) in r.categories.withIndex()) {
            lines.add(String.format(Locale.US, "%d. %s  %.3f", rank + 1, c.label, c.score))
        }
        val lh = text.textSize * 1.35f
        canvas.drawRect(0f, 0f, width.toFloat(), lh * lines.size + 12 * density, panel)
        for ((i, line) in lines.withIndex()) canvas.drawText(line, 8 * density, 8 * density + lh * (i + 1) - 4 * density, text)
    }
}
