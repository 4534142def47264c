"""Custom Keras layers edgecnn models use, registered as serializable (safe_mode loads them).

Keep this list short: every layer here must convert to TFLite builtins and int8.
"""
