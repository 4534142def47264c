"""Probe (not product code): output-aware rounding of convolution weights for int8.

Used by ``benchmarks/transfer.py probe`` to find where EfficientNet-Lite0 loses int8 top-1
agreement; measured there and recorded in docs/BENCHMARKS.md, not wired into the converter.

The converter folds each BatchNorm into the convolution before it and rounds the folded
kernel to the nearest point of a per-output-channel int8 grid (``max |w| / 127``). Nearest
rounding minimizes the error of each weight, not of the channel's output. Where BatchNorm has a
large gain (EfficientNet-Lite0's stem and first depthwise conv fold to |w| up to 17) the output
is a small difference of large terms, and the rounding errors of a filter add up, mostly
through its response to the local mean brightness.

This pass picks, per output channel, the grid point of each weight (round up or down) that
minimizes ``d^T C d`` (``d`` the rounding error vector, ``C = E[x x^T]`` the second moment of
the layer's input patches on calibration images): the expected squared output error. It is the
greedy core of AdaRound (Nagel et al., 2020) without training. The result is written back into
a copy of the Keras model as unfolded weights that fold onto exactly those grid points, so
the unchanged converter reproduces them; the grid itself (the channel's largest weight) is
never moved.
"""

from __future__ import annotations

import numpy as np

BATCH = 4
MAX_PASSES = 4


def conv_bn_pairs(kmodel) -> list[tuple[object, object]]:
    """(Conv2D or DepthwiseConv2D, the BatchNormalization it alone feeds), in graph order.

    These are the pairs the converter folds into one int8 kernel.
    """
    pairs = []
    for layer in kmodel.layers:
        if type(layer).__name__ != "BatchNormalization":
            continue
        history = getattr(layer.input, "_keras_history", None)
        conv = history.operation if history is not None else None
        kind = type(conv).__name__
        plain = (kind == "Conv2D" and conv.groups == 1) or \
            (kind == "DepthwiseConv2D" and conv.depth_multiplier == 1)
        if plain and not conv.use_bias and len(conv._outbound_nodes) == 1:
            pairs.append((conv, layer))
    return pairs


def _patches(x: np.ndarray, layer) -> np.ndarray:
    """(pixels, kh, kw, cin) input patches the layer's kernel sees (its padding and stride)."""
    import tensorflow as tf

    kh, kw = layer.kernel_size
    sh, sw = layer.strides
    if (kh, kw) == (1, 1):
        return x[:, ::sh, ::sw, :].reshape(-1, 1, 1, x.shape[-1])
    p = tf.image.extract_patches(x, [1, kh, kw, 1], [1, sh, sw, 1], [1, 1, 1, 1],
                                 layer.padding.upper()).numpy()
    return p.reshape(-1, kh, kw, x.shape[-1])


class _Moments:
    """Running ``E[x x^T]`` of a layer's input patches (per channel for depthwise)."""

    def __init__(self, layer):
        self.layer = layer
        self.depthwise = type(layer).__name__ == "DepthwiseConv2D"
        self.sum = None
        self.count = 0

    def add(self, x: np.ndarray) -> None:
        p = _patches(x, self.layer).astype(np.float64)
        if self.depthwise:
            q = p.reshape(len(p), -1, p.shape[-1]).transpose(2, 0, 1)     # (cin, N, k*k)
            s = np.einsum("cni,cnj->cij", q, q)
        else:
            q = p.reshape(len(p), -1)                                       # (N, k*k*cin)
            s = q.T @ q
        self.sum = s if self.sum is None else self.sum + s
        self.count += len(p)

    def matrices(self) -> np.ndarray:
        """(channels or 1, n, n) second-moment matrices."""
        m = self.sum / max(self.count, 1)
        return m if self.depthwise else m[None]


def round_channels(f: np.ndarray, C: np.ndarray) -> np.ndarray:
    """Grid rounding of ``f`` (channels, n) minimizing each channel's ``d^T C d``.

    ``C`` is (channels, n, n) or (1, n, n) shared. The grid step of each channel is its
    largest |weight| / 127, and that weight keeps its grid point. Greedy, all channels at
    once: from nearest rounding, move weight i of every channel one step up or down where that
    lowers the cost (exact incremental cost through the gradient ``g = C d``), for i = 0..n-1,
    for up to MAX_PASSES passes.
    """
    step = np.abs(f).max(axis=1, keepdims=True) / 127
    step[step == 0] = 1.0
    k = np.round(f / step)
    keep = np.abs(f).argmax(axis=1)
    d = k * step - f
    g = np.einsum("cij,cj->ci", np.broadcast_to(C, (len(f),) + C.shape[1:]), d)
    diag = np.diagonal(C, axis1=1, axis2=2)                # (channels or 1, n)
    for _ in range(MAX_PASSES):
        moved = False
        for i in range(f.shape[1]):
            s = step[:, 0]
            free = keep != i
            best = np.zeros(len(f))
            for delta in (1.0, -1.0):
                change = 2 * delta * s * g[:, i] + s * s * diag[:, i]
                ok = free & (np.abs(k[:, i] + delta) <= 127) & (change < -1e-12) & (best == 0)
                best[ok] = delta
            if not best.any():
                continue
            moved = True
            k[:, i] += best
            d[:, i] += best * s
            g += (best * s)[:, None] * C[:, :, i]
        if not moved:
            break
    return k * step


def adaptive_rounding(kmodel, calib_x: np.ndarray):
    """A copy of ``kmodel`` whose folded conv kernels sit on output-aware int8 grid points.

    Args:
        kmodel: functional Keras model (float).
        calib_x: model inputs (N, H, W, C) as the converter calibrates with; 16-64 suffice.

    Returns:
        (the adjusted copy, number of layers adjusted). Models without Conv+BN pairs come
        back unchanged.
    """
    import keras

    model = keras.models.clone_model(kmodel)
    model.set_weights(kmodel.get_weights())
    pairs = conv_bn_pairs(model)
    if not pairs:
        return model, 0
    probe = keras.Model(model.inputs, [conv.input for conv, _ in pairs])
    moments = [_Moments(conv) for conv, _ in pairs]
    for i in range(0, len(calib_x), BATCH):
        outs = probe(calib_x[i:i + BATCH], training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        for acc, x in zip(moments, outs):
            acc.add(np.asarray(x))
    for (conv, bn), acc in zip(pairs, moments):
        _round_layer(conv, bn, acc)
    return model, len(pairs)


def _round_layer(conv, bn, acc: _Moments) -> None:
    gamma, _, _, var = bn.get_weights()[:4]
    gain = (gamma / np.sqrt(var + bn.epsilon)).astype(np.float64)
    w = conv.get_weights()[0]
    # (channels, n): one row per output channel, in the kernel's own element order.
    rows = (w[:, :, :, 0].reshape(-1, w.shape[2]).T if acc.depthwise
            else w.reshape(-1, w.shape[3]).T).astype(np.float64)
    live = gain != 0
    folded = rows * gain[:, None]
    C = acc.matrices()
    rounded = round_channels(folded[live], C[live] if acc.depthwise else C)
    rows[live] = rounded / gain[live, None]
    out = (rows.T.reshape(w.shape[:3])[..., None] if acc.depthwise
           else rows.T.reshape(w.shape))
    conv.set_weights([out.astype(w.dtype)])
