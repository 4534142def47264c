package org.edgecnn.core

/**
 * Classification post-processing, the Kotlin twin of `Classifier.scores` / `postprocess` in
 * `edgecnn/runtime/classifier.py`.
 */
object Classify {
    /**
     * Per-class probabilities from the dequantized output.
     *
     * `softmax`: the output already is probabilities; `none`: logits, softmax applied here;
     * `sigmoid`: applied only when the values are not already within 0..1 (a converter may have
     * kept the activation inside the model).
     */
    fun scores(raw: FloatArray, activation: String): FloatArray {
        if (raw.isEmpty()) return raw
        var lo = raw[0]
        var hi = raw[0]
        for (v in raw) { if (v < lo) lo = v; if (v > hi) hi = v }
        if (activation == "none") {
            val e = FloatArray(raw.size) { Math.exp((raw[it] - hi).toDouble()).toFloat() }
            var sum = 0f
            for (v in e) sum += v
            for (i in e.indices) e[i] = e[i] / sum
            return e
        }
        if (activation == "sigmoid" && (lo < 0f || hi > 1f)) {
            return FloatArray(raw.size) { (1.0 / (1.0 + Math.exp(-raw[it].toDouble()))).toFloat() }
        }
        return raw.copyOf()
    }

    /**
     * The [k] best classes, best first; equal scores are ordered by class index. Classes
     * scoring below [scoreThreshold] are dropped.
     */
    fun topK(probs: FloatArray, labels: List<String>, k: Int, scoreThreshold: Float = 0f): List<Category> {
        val n = Math.max(1, Math.min(k, probs.size))
        val order = probs.indices.sortedWith(compareByDescending<Int> { probs[it] })
        val out = ArrayList<Category>(n)
        for (j in 0 until n) {
            val i = order[j]
            if (probs[i] >= scoreThreshold) out.add(Category(i, labels[i], probs[i]))
        }
        return out
    }
}
