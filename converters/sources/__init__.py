"""One module per source format (like Keras' ``export/`` package): read, describe, convert.

Each module turns a model file into a :class:`converters.sources.base.SourceModel`: its input
(shape and NCHW/NHWC layout), outputs, the metadata the file carries, a reference function
running the source framework (for the parity report), and the route to TFLite. Heavy
frameworks (onnx, onnx2tf, torch, ai-edge-quantizer) are imported only inside these functions.
"""
