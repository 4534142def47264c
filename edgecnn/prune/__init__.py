"""Pruning for Keras 3 models: magnitude (masks + schedule) and structured channel pruning.

Importing this package does not import TensorFlow; the modules below do when used.
"""
