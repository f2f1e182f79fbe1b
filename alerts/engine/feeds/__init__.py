"""Market sources into the engine: venue routing, failover, warm-up, DATA_QUALITY alerts.

``DataManager`` (``manager.py``) is the one ``MarketSink`` the sources deliver to;
``parse_routes`` reads the ``market_routes`` setting; ``build_sources`` makes the
configured sources.
"""

from alerts.engine.feeds.catalog import build_sources
from alerts.engine.feeds.manager import DataManager
from alerts.engine.feeds.routes import Route, parse_routes

__all__ = ["DataManager", "Route", "build_sources", "parse_routes"]
