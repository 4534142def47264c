"""Packaging converted models for target apps (``edgecnn export``). Device side: no TensorFlow."""
