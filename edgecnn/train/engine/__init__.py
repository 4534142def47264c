"""The training engines: one per task, called by ``train``, prune fine-tuning and ``qat``.

- :mod:`~edgecnn.train.engine.detector`: the detector's train step (target assignment with the
  static warm-up, losses, gradient clipping, optimizer, EMA of the weights) and epoch loop (val
  mAP, best weights, history), on any forward that maps images to ``(ltrb, logits)`` (the float
  model, or the simulated-int8 graph of :mod:`edgecnn.qat.sim`).
- :mod:`~edgecnn.train.engine.classifier`: the classifier's compile and Keras ``fit`` (seeded
  input pipelines, callbacks, progress lines, best checkpoint) and its accuracy.

Callers choose the recipe (epochs, learning rate, schedule, EMA, static assignment, which epoch
to keep) through frozen dataclasses; the code that trains is only here. Nothing in this package
imports TensorFlow at import time.
"""
