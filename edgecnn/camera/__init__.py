"""Real-time inference on a camera, stream or video file (device side: no TensorFlow).

- :mod:`edgecnn.camera.sources`: open a camera index, ``/dev/videoN``, file, URL, GStreamer
  pipeline or picamera2 as one typed frame source;
- :mod:`edgecnn.camera.capture`: a capture thread that always hands over the newest frame;
- :mod:`edgecnn.camera.overlay`: boxes, labels, top-k and stage timings drawn in place;
- :mod:`edgecnn.camera.loop`: ``run(model, source, options) -> Summary``;
- :mod:`edgecnn.camera.writer` and :mod:`edgecnn.camera.summary`: outputs and the exit report.
"""
