"""Example bot: create a rule, then print each of its alerts on one line, forever.

    PYTHONPATH=. python clients/python/example_bot.py --server 127.0.0.1:50051 \
        --symbol binance:BTCUSDT --condition "price > 65000" --mode EVERY_TIME

Run from the repository root (the client uses the service's generated
``alerts.v1`` modules). The stream survives server restarts and dropped
connections: it resumes after the last alert printed, so none is missed or
printed twice. ``--resume-after ID`` replays stored alerts after ID first.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from alerts_client import Alert, AlertsClient, AlertsError


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="127.0.0.1:50051", help="host:port")
    parser.add_argument("--symbol", required=True, help="venue:SYMBOL, e.g. binance:BTCUSDT")
    parser.add_argument("--condition", required=True, help='rule text, e.g. "price > 65000"')
    parser.add_argument("--mode", default="ON_TRUE",
                        help="ON_TRUE, ONCE, EVERY_TIME, ONCE_PER_BAR, ONCE_PER_BAR_CLOSE")
    parser.add_argument("--timeframe", default=None, help="1m, 5m, 15m, 1h, 4h, 1d")
    parser.add_argument("--cooldown", type=float, default=None, help="seconds between fires")
    parser.add_argument("--rule-id", default=None, help="the rule's id (default: server-assigned)")
    parser.add_argument("--resume-after", type=int, default=None,
                        help="replay stored alerts after this id first")
    parser.add_argument("--count", type=int, default=0, help="exit after N alerts (0: never)")
    return parser.parse_args(argv)


def line(alert: Alert) -> str:
    when = alert.event_time.ToDatetime().isoformat(timespec="milliseconds") + "Z"
    return f"ALERT {alert.id} {alert.symbol} {when} {alert.message}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with AlertsClient(args.server) as client:
        try:
            rule = client.create_rule(args.symbol, args.condition, mode=args.mode,
                                      timeframe=args.timeframe, cooldown=args.cooldown,
                                      rule_id=args.rule_id)
            print(f"RULE {rule.name} {rule.symbol} {rule.condition_text}", flush=True)
            stream = client.alerts(
                resume_after=args.resume_after, rules=[rule.name],
                on_caught_up=lambda cursor: print(f"READY after {cursor}", flush=True),
                on_reconnect=lambda err, delay: print(
                    f"RECONNECT in {delay:.2f}s ({err.code.name if err else 'stream ended'})",
                    file=sys.stderr, flush=True))
            for seen, alert in enumerate(stream, start=1):
                print(line(alert), flush=True)
                if seen == args.count:
                    return 0
        except AlertsError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
