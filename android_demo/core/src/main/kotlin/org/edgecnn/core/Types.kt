package org.edgecnn.core

/** One class and its score (probability). */
class Category(val index: Int, val label: String, val score: Float) {
    override fun toString(): String = "Category($index, $label, $score)"
}

/** A box in original-image pixels: left, top, right, bottom. */
class Rect(val left: Double, val top: Double, val right: Double, val bottom: Double) {
    val width: Double get() = right - left
    val height: Double get() = bottom - top

    /** Intersection over union with another box (0 when the union is empty). */
    fun iou(other: Rect): Double {
        val iw = Math.min(right, other.right) - Math.max(left, other.left)
        val ih = Math.min(bottom, other.bottom) - Math.max(top, other.top)
        val inter = Math.max(iw, 0.0) * Math.max(ih, 0.0)
        val union = width * height + other.width * other.height - inter
        return if (union > 0) inter / union else 0.0
    }

    override fun toString(): String = "Rect($left, $top, $right, $bottom)"
}

class Detection(val box: Rect, val category: Category) {
    override fun toString(): String = "Detection($box, $category)"
}
