"""``edgecnn camera --serve``: a live browser view and monitoring endpoints beside the loop.

- :mod:`.hub`: :class:`FrameHub`, the newest annotated frame and record, published by the loop;
- :mod:`.server`: :class:`HttpServer` (standard library ``http.server``) and its routes;
- :mod:`.metrics`: the Prometheus text of ``/metrics``;
- ``page.html``: the page at ``/``.
"""

from edgecnn.camera.serve.hub import FrameHub
from edgecnn.camera.serve.server import HttpServer, ServeOptions, parse_address

__all__ = ["FrameHub", "HttpServer", "ServeOptions", "parse_address"]
