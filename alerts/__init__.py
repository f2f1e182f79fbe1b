"""Real-time symbol alerts service for trading bots.

Domain packages (``engine``, ``rules``, ``market``, ``delivery``, ``storage``)
speak plain Python types; only ``api`` and ``cli`` import grpc and the
generated ``alerts.v1`` modules. The hot path lives in ``alerts_core``.
"""

__version__ = "0.1.0"
