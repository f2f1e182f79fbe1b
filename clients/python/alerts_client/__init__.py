"""A typed Python client for the alerts.v1 AlertService.

>>> with AlertsClient("127.0.0.1:50051") as client:          # doctest: +SKIP
...     rule = client.create_rule("binance:BTCUSDT", "price > 65000", mode="EVERY_TIME")
...     for alert in client.alerts(rules=[rule.name]):
...         print(alert.id, alert.message)

It uses the generated ``alerts.v1`` modules of the service package (build them
with ``python setup.py protos``).
"""

from __future__ import annotations

from alerts.v1.alerts_pb2 import Alert
from alerts.v1.channels_pb2 import Channel
from alerts.v1.rules_pb2 import Rule
from alerts.v1.service_pb2 import PublishTicksResponse, ValidateRuleResponse
from alerts_client.backoff import Backoff
from alerts_client.client import AlertsClient
from alerts_client.convert import TickTuple
from alerts_client.errors import AlertsError, FieldViolation

__all__ = [
    "Alert",
    "AlertsClient",
    "AlertsError",
    "Backoff",
    "Channel",
    "FieldViolation",
    "PublishTicksResponse",
    "Rule",
    "TickTuple",
    "ValidateRuleResponse",
]
