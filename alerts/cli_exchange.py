"""``alerts exchange replay FILE...`` and ``alerts exchange synthetic``: a local Binance.

Both serve the WebSocket market streams and REST market data of
``alerts.market.exchange`` on one port, print one line with the WebSocket and
REST base URLs, then a progress line every 5 s, until Ctrl-C (every connection
gets ``serverShutdown`` first). ``replay`` reads trade files (the CSV layouts of
``../shared/data``, gzip or plain) at ``--speed``; ``synthetic`` serves a seeded
random walk of ``--rate`` trades per second over ``--symbols`` symbols. Bad
input (a missing file, unknown columns, a bad ``--listen``) is one line and
exit code 2. The logic lives in the package; this module only reads flags.
"""

from __future__ import annotations

import argparse
from typing import Any


def _run(args: argparse.Namespace) -> int:
    import asyncio

    from alerts.cli import CliError
    from alerts.market.exchange import ReplayExchange
    from alerts.market.exchange.runner import parse_listen, serve_exchange

    host, port = parse_listen(args.listen)
    settings = {"host": host, "port": port, "venue": args.venue,
                "ping_interval_s": args.ping_interval, "max_lifetime_s": args.max_lifetime,
                "weight_limit": args.weight_limit, "drop_after_messages": args.drop_after,
                "progress": lambda p: print(p.line(), flush=True)}
    try:
        if args.source == "replay":
            exchange = ReplayExchange.from_files(args.files, speed=args.speed, **settings)
        else:
            exchange = ReplayExchange.synthetic(args.symbols, seed=args.seed, rate=args.rate,
                                                **settings)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    asyncio.run(serve_exchange(exchange, lambda line: print(line, flush=True)))
    return 0


def _positive(kind: type) -> object:
    def parse(text: str) -> object:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0: {text!r}")
        return value
    return parse


def add_parser(sub: Any) -> None:
    """Add the ``exchange`` command to the ``alerts`` sub-command set ``sub``."""
    ex = sub.add_parser("exchange", help="a local Binance-compatible exchange (WS + REST)")
    exsub = ex.add_subparsers(dest="source", required=True)
    replay = exsub.add_parser("replay", help="serve recorded trade files")
    replay.add_argument("files", nargs="+", help="trade CSV files (gzip or plain)")
    replay.add_argument("--speed", type=float, default=1.0,
                        help="1 real time, 10 ten times faster, 0 as fast as clients read")
    synth = exsub.add_parser("synthetic", help="serve a seeded random walk")
    synth.add_argument("--symbols", type=_positive(int), default=8, help="how many symbols")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--rate", type=_positive(float), default=10.0,
                       help="trades per second over all symbols")
    for p in (replay, synth):
        p.add_argument("--listen", default="127.0.0.1:9443", help="HOST:PORT (port 0: any)")
        p.add_argument("--venue", default="spot", choices=["spot", "usdm"],
                       help="spot: /api/v3 REST; usdm: /fapi/v1 (binance-usdm: symbols)")
        p.add_argument("--ping-interval", type=_positive(float), default=20.0,
                       help="seconds between server pings")
        p.add_argument("--max-lifetime", type=_positive(float), default=24 * 3600.0,
                       help="seconds a stream connection lives")
        p.add_argument("--weight-limit", type=_positive(int), default=6000,
                       help="REST request weight per minute")
        p.add_argument("--drop-after", type=_positive(int),
                       help="fault: cut every stream connection after this many frames")
        p.set_defaults(func=_run)
