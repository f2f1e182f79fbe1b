"""Prometheus metrics of one service instance (its own registry, so tests can run many).

Exposed over HTTP by ``start_metrics_server``: ticks in by outcome, alerts
fired, batch sizes, tick-to-alert latency (receive -> commit), store write
latency, stream subscribers and their deepest queue, WebSocket clients and the
ones the server closed; delivery attempts by channel kind and outcome, their
latency, alert-to-delivery latency, pending deliveries and dead letters.
latency, stream subscribers and their deepest queue; per market source its
health, lag, message rate, ticks by outcome, feed events and venue switches.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from alerts.errors import UnavailableError

if TYPE_CHECKING:
    from alerts.api.server import App

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
DELIVERY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                    30.0, 60.0, 300.0, 3600.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.ticks = Counter("alerts_ticks_total", "Ticks received, by outcome", ["outcome"],
                             registry=r)
        self.alerts = Counter("alerts_fired_total", "Alerts committed", registry=r)
        self.batch_size = Histogram("alerts_batch_ticks", "Ticks per engine batch",
                                    buckets=(1, 10, 100, 1000, 4096, 16384, 65536), registry=r)
        self.tick_to_alert = Histogram("alerts_tick_to_alert_seconds",
                                       "From a batch's receipt to its alerts' commit",
                                       buckets=LATENCY_BUCKETS, registry=r)
        self.store_write = Histogram("alerts_store_write_seconds",
                                     "One batch's store transaction", buckets=LATENCY_BUCKETS,
                                     registry=r)
        self.subscribers = Gauge("alerts_stream_subscribers", "Open alert streams", registry=r)
        self.queue_depth = Gauge("alerts_stream_queue_depth_max",
                                 "Deepest stream subscriber queue", registry=r)
        self.websocket_clients = Gauge("alerts_websocket_clients", "Open WebSocket connections",
                                       registry=r)
        self.websocket_closed = Counter("alerts_websocket_closed_total",
                                        "WebSocket clients the server closed, by reason "
                                        "(slow, token_expired)", ["reason"], registry=r)
        self.checkpoint_age = Gauge("alerts_checkpoint_age_seconds",
                                    "Age of the last engine checkpoint (NaN: none yet)",
                                    registry=r)
        self.deliveries = Counter(
            "alerts_delivery_attempts_total",
            "Delivery attempts by channel kind and outcome (delivered, retry, dead)",
            ["kind", "outcome"], registry=r)
        self.delivery_latency = Histogram(
            "alerts_delivery_attempt_seconds", "One delivery attempt, by channel kind", ["kind"],
            buckets=DELIVERY_BUCKETS, registry=r)
        self.alert_to_delivery = Histogram(
            "alerts_alert_to_delivery_seconds",
            "From an alert's commit to its delivery (retries included), by channel kind",
            ["kind"], buckets=DELIVERY_BUCKETS, registry=r)
        self.deliveries_pending = Gauge("alerts_deliveries_pending",
                                        "Deliveries waiting for an attempt", registry=r)
        self.dead_letters = Gauge("alerts_dead_letters",
                                  "Deliveries in the dead-letter state", registry=r)
        # market sources (the DataManager)
        self.source_ticks = Counter(
            "alerts_source_ticks_total", "Ticks from market sources, by source and outcome "
            "(forwarded, held, inactive, duplicate, invalid, unsubscribed, warming)",
            ["source", "outcome"], registry=r)
        self.source_events = Counter("alerts_source_events_total",
                                     "Feed events reported by market sources",
                                     ["source", "kind"], registry=r)
        self.source_up = Gauge("alerts_source_up",
                               "1 while the source is up and not stale, else 0",
                               ["source"], registry=r)
        self.source_active = Gauge("alerts_source_active",
                                   "1 for the source feeding its venue now, else 0",
                                   ["venue", "source"], registry=r)
        self.source_lag = Gauge("alerts_source_lag_seconds",
                                "Wall clock minus the event time of the source's last tick",
                                ["source"], registry=r)
        self.source_rate = Gauge("alerts_source_messages_per_second",
                                 "Messages the source received per second since the last "
                                 "health check", ["source"], registry=r)
        self.source_messages = Gauge("alerts_source_messages",
                                     "Messages the source received since it started",
                                     ["source"], registry=r)
        self.source_switches = Counter("alerts_source_switches_total",
                                       "Times a venue was switched to this source",
                                       ["venue", "source"], registry=r)
        self.warmup_bars = Counter("alerts_warmup_bars_total",
                                   "History bars fed to warm new symbols up", ["venue"],
                                   registry=r)


def start_metrics_server(listen: str, app: App) -> str:
    """Serve /metrics on ``host:port`` (port 0: any); returns the address bound."""
    host, _, port = listen.rpartition(":")
    try:
        server, _thread = start_http_server(int(port), addr=host or "127.0.0.1",
                                            registry=app.processor.metrics.registry)
    except (OSError, ValueError) as exc:
        raise UnavailableError(f"cannot serve metrics on {listen}: {exc}") from None
    app.on_stop.append(server.shutdown)
    bound_host, bound_port = server.server_address[:2]
    if isinstance(bound_host, bytes):
        bound_host = bound_host.decode()
    return f"{bound_host}:{bound_port}"
