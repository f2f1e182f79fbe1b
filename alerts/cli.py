"""The ``alerts`` command.

``alerts serve``: run the service (configuration: TOML file < ``ALERTS_*``
environment < flags; see ``alerts.config``). ``alerts rules
create|list|get|delete|validate``, ``alerts channels
create|list|get|update|delete|test`` (``alerts.cli_channels``) and ``alerts tail``:
thin gRPC clients for people at a terminal (``--server``, default
127.0.0.1:50051).
``alerts deliveries list|redeliver CHANNEL``: a channel's deliveries (each with
its attempts; ``--state dead`` for the dead letters) and putting dead letters
back to pending.
``alerts token create --owner X [--ttl S]``: print a WebSocket client token
signed with ``ws_jwt_secret``.
``alerts validate CONDITION``: parse and compile a rule, print its canonical
text, timeframe and operands (or the error with ``line:col``).
``alerts backtest``: run rules over recorded trades or klines (CSV, gzip or
not, in the column layout of Binance's trades/aggTrades or klines exports)
through the same core the service uses, printing every alert.
``alerts demo``: the replay exchange (a seeded random walk, or recorded trade
files) and the service with the Binance source pointed at it, a few sample
rules, and every alert printed as it fires; no network needed.
``alerts exchange replay FILE...`` / ``alerts exchange synthetic``: a local
Binance-compatible exchange (WebSocket streams and REST) over recorded trades
or a seeded random walk (``alerts.market.exchange``).

Bad input ends with one line naming the problem and exit code 2, never a
traceback.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

import numpy as np

from alerts.cli_channels import add_parser as add_channels_parser
from alerts.cli_exchange import add_parser as add_exchange_parser
from alerts.errors import AlertsError
from alerts.rules.compiler import MODES, qualify
from alerts.rules.format import format_condition
from alerts.rules.parser import parse_condition

EXIT_USAGE = 2


class CliError(Exception):
    """A problem with the command line or its input: one line, exit code 2."""


def _open_text(path: Path) -> TextIO:
    if not path.exists():
        raise CliError(f"{path}: no such file")
    raw = path.open("rb")
    if raw.read(2) == b"\x1f\x8b":
        raw.seek(0)
        return io.TextIOWrapper(gzip.GzipFile(fileobj=raw), encoding="utf-8")
    raw.seek(0)
    return io.TextIOWrapper(raw, encoding="utf-8")


def _cmd_validate(args: argparse.Namespace) -> int:
    from alerts.engine.kernel import Kernel

    kernel = Kernel(default_venue=args.default_venue)
    compiled = kernel.compile(args.symbol, args.condition, mode=args.mode,
                              timeframe=args.timeframe)
    print(f"condition: {format_condition(parse_condition(args.condition))}")
    print(f"symbol:    {compiled.symbol}")
    print(f"mode:      {args.mode}")
    print(f"timeframe: {compiled.timeframe or 'tick level'}")
    for label, operand in zip(compiled.labels, compiled.operands):
        print(f"operand:   {label}  [{operand.symbol}]")
    return 0


def _load_columns(path: Path) -> tuple[str, dict[str, list[str]]]:
    with _open_text(path) as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            raise CliError(f"{path}: empty file")
        cols: dict[str, list[str]] = {name: [] for name in header}
        for row in reader:
            for name, value in zip(header, row):
                cols[name].append(value)
    if {"price", "qty", "time_ms"} <= cols.keys():
        return "trades", cols
    if {"open_time_ms", "open", "high", "low", "close", "volume"} <= cols.keys():
        return "klines", cols
    raise CliError(f"{path}: unknown columns {', '.join(header)}; expected trades "
                   "(symbol,trade_id,price,qty,time_ms) or klines "
                   "(symbol,open_time_ms,open,high,low,close,volume)")


def _cmd_backtest(args: argparse.Namespace) -> int:
    from alerts.engine.kernel import Kernel

    kernel = Kernel(default_venue=args.default_venue)
    src = kernel.add_source(fill_gaps=not args.no_fill_gaps)
    for i, condition in enumerate(args.rule):
        kernel.add_rule(f"rule{i + 1}", args.symbol, condition, mode=args.mode,
                        timeframe=args.timeframe, cooldown_ms=args.cooldown_ms)
    venue = args.symbol.partition(":")[0] if ":" in args.symbol else args.default_venue
    total = 0
    for path in args.files:
        kind, cols = _load_columns(Path(path))
        try:
            if "symbol" in cols:
                names = [s if ":" in s else f"{venue}:{s}" for s in cols["symbol"]]
            else:
                names = [qualify(args.symbol, args.default_venue)] * len(
                    cols["time_ms" if kind == "trades" else "open_time_ms"])
            ids = kernel.intern(names)
            if kind == "trades":
                order = np.lexsort((np.asarray(cols.get("trade_id", ["0"] * len(ids)), np.int64),
                                   np.asarray(cols["time_ms"], np.int64)))
                fired = kernel.process(
                    src, ids[order], np.asarray(cols["time_ms"], np.int64)[order],
                    np.asarray(cols["price"], np.float64)[order],
                    np.asarray(cols["qty"], np.float64)[order],
                    np.asarray(cols.get("trade_id", ["0"] * len(ids)), np.int64)[order])
            else:
                order = np.argsort(np.asarray(cols["open_time_ms"], np.int64), kind="stable")
                fired = kernel.process_bars(
                    src, args.bar_timeframe, ids[order],
                    *(np.asarray(cols[c], np.float64 if c != "open_time_ms" else np.int64)[order]
                      for c in ("open_time_ms", "open", "high", "low", "close", "volume")))
        except ValueError as exc:
            raise CliError(f"{path}: bad number in the data ({exc})") from exc
        rules = dict(zip((f"rule{i + 1}" for i in range(len(args.rule))), args.rule))
        for f in fired:
            values = ", ".join(f"{v:.10g}" for v in f.values)
            print(f"{f.time_ms}\t{f.symbol}\t{f.rule_id}\t{rules[f.rule_id]}\t[{values}]")
        total += len(fired)
        counts = kernel.last_counts
        print(f"# {path}: {counts.accepted} accepted, {counts.late} late, "
              f"{counts.duplicate} duplicate, {counts.invalid} invalid", file=sys.stderr)
    print(f"# {total} alerts", file=sys.stderr)
    return 0


#: ``sys.setswitchinterval`` of ``alerts serve`` (see there).
GIL_SWITCH_INTERVAL_S = 0.001


def _cmd_serve(args: argparse.Namespace) -> int:
    import asyncio
    import os
    import signal

    os.environ.setdefault("GRPC_VERBOSITY", "NONE")  # errors are reported in one line below
    # A thread that wants the GIL back (the engine after a batch, the SQLite writer after a
    # commit, gRPC's poller) waits this long at worst while the event loop runs Python; at
    # the default 5 ms that wait was the tail of tick -> alert (load harness p99 ~10.5 ->
    # ~7 ms at 1 ms, with less CPU, not more).
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)

    from alerts.api.server import build_server
    from alerts.config import Config
    from alerts.observability.logging import configure_logging

    config = Config.load(args.config, grpc_listen=args.grpc_listen,
                         metrics_listen=args.metrics_listen, store_url=args.store,
                         default_venue=args.default_venue_serve, ws_listen=args.ws_listen)
    configure_logging(config.log_level)

    async def run() -> None:
        app = await build_server(config)
        await app.start()
        metrics = f", metrics on http://{app.metrics_address}" if app.metrics_address else ""
        ws = f", WebSocket on ws://{app.websocket_address}" if app.websocket_address else ""
        print(f"alerts: gRPC on {config.grpc_listen.rsplit(':', 1)[0]}:{app.port}{ws}{metrics}, "
              f"store {config.store_url}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        print("alerts: stopping", flush=True)
        await app.stop()

    asyncio.run(run())
    return 0


DEMO_RULES = (
    ("btc-sma-cross", "BTCUSDT", "close(1m) crosses sma(5, 1m)", "ONCE_PER_BAR_CLOSE"),
    ("eth-rsi-50", "ETHUSDT", "rsi(14, 5m) crosses 50", "ONCE_PER_BAR_CLOSE"),
    ("btc-jump", "BTCUSDT", "change_pct(3, 1m) >= 0.15", "ON_TRUE"),
    ("eth-band-exit", "ETHUSDT", "price exits bb(20, 2, 1m)", "ON_TRUE"),
)
"""The demo's rules: (id, symbol, condition, trigger mode)."""
DEMO_HISTORY_MS = 3 * 3_600_000
"""Random-walk history the demo's exchange has before the rules are created."""


def _cmd_demo(args: argparse.Namespace) -> int:
    import asyncio
    import os
    import tempfile
    import time

    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    import grpc

    from alerts.api.convert import KIND_NAMES, MODE_ENUM
    from alerts.api.server import build_server
    from alerts.config import Config
    from alerts.market.exchange import ReplayExchange
    from alerts.observability.logging import configure_logging
    from alerts.v1 import rules_pb2, service_pb2, service_pb2_grpc

    if args.seconds < 0 or args.speed <= 0 or args.drop_after < 0:
        raise CliError("--seconds and --drop-after must be >= 0, --speed > 0")
    configure_logging("error")
    # the replay runs in the past (so it never outruns the wall clock), after three hours of
    # history the exchange has at once: new rules warm up from its klines
    run_ms = int((args.seconds or 3600) * args.speed * 1000)
    start_ms = int(time.time() * 1000) - run_ms - DEMO_HISTORY_MS - 60_000
    if args.files:
        exchange = ReplayExchange.from_files(args.files, speed=args.speed)
        what = f"{len(args.files)} recorded file(s)"
    else:
        exchange = ReplayExchange.synthetic(args.symbols, seed=args.seed, rate=args.rate,
                                            start_ms=start_ms, speed=args.speed)
        what = f"a random walk of {args.symbols} symbols"

    async def run(store_url: str) -> int:
        fired = 0
        async with exchange as ex:
            if not args.files:
                ex.pause()
                await ex.run_until(start_ms + DEMO_HISTORY_MS)
                ex.resume()
            config = Config(grpc_listen="127.0.0.1:0", metrics_listen="", ws_listen="",
                            store_url=store_url,
                            market_sources=True, market_routes="binance=binance",
                            binance_ws_url=ex.ws_url, binance_rest_url=ex.rest_url)
            app = await build_server(config)
            await app.start()
            print(f"alerts demo: exchange {ex.rest_url} replaying {what} at {args.speed:g}x; "
                  f"service on 127.0.0.1:{app.port}", flush=True)
            try:
                async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
                    stub = service_pb2_grpc.AlertServiceStub(channel)
                    for rule_id, symbol, condition, mode in DEMO_RULES:
                        await stub.CreateRule(service_pb2.CreateRuleRequest(
                            rule_id=rule_id, rule=rules_pb2.Rule(
                                symbol=symbol, condition_text=condition,
                                trigger_mode=MODE_ENUM[mode])))
                    if app.feeds is not None:
                        await app.feeds.idle()          # subscribed, warmed up from history
                    # a rule shows WARMING_UP until its first evaluation after the history
                    # (a bar-close rule: its timeframe's next close), at most 30 s here
                    settled = time.monotonic() + 30
                    while True:
                        listed = await stub.ListRules(service_pb2.ListRulesRequest())
                        if time.monotonic() > settled or all(
                                r.state != rules_pb2.Rule.STATE_WARMING_UP
                                for r in listed.rules):
                            break
                        await asyncio.sleep(0.2)
                    for r in listed.rules:
                        print(f"{r.name}: {r.symbol} {r.condition_text} "
                              f"[{rules_pb2.TriggerMode.Name(r.trigger_mode)}] "
                              f"{rules_pb2.Rule.State.Name(r.state)}", flush=True)
                    stream = stub.StreamAlerts(service_pb2.StreamAlertsRequest(resume_after=0))
                    if args.drop_after:     # the exchange cuts its connections once
                        loop = asyncio.get_running_loop()
                        loop.call_later(args.drop_after, ex.faults.drop)
                    try:
                        async with asyncio.timeout(args.seconds or None):
                            async for msg in stream:
                                if msg.WhichOneof("payload") != "alert":
                                    continue
                                a = msg.alert
                                fired += 1
                                print(f"{a.event_time.ToJsonString()}  "
                                      f"{KIND_NAMES[a.kind]:<12}  {a.message}", flush=True)
                    except TimeoutError:
                        pass
                    finally:
                        stream.cancel()
            finally:
                await app.stop(grace=1.0)
        print(f"alerts demo: {fired} alerts", flush=True)
        return 0

    with tempfile.TemporaryDirectory(prefix="alerts-demo-") as tmp:
        try:
            return asyncio.run(run(f"sqlite:///{tmp}/demo.db"))
        except KeyboardInterrupt:
            return 0


def _cmd_token(args: argparse.Namespace) -> int:
    from alerts.auth.tokens import issue_token
    from alerts.config import Config

    secret = Config.load(args.config).ws_jwt_secret
    if not secret:
        raise CliError("no ws_jwt_secret: set it in the config file (--config) or "
                       "ALERTS_WS_JWT_SECRET")
    print(issue_token(secret, args.owner, args.ttl))
    return 0


def _client(args: argparse.Namespace):
    import grpc

    from alerts.v1 import service_pb2_grpc

    channel = grpc.insecure_channel(args.server)
    return service_pb2_grpc.AlertServiceStub(channel)


def _cmd_rules(args: argparse.Namespace) -> int:
    from google.protobuf import field_mask_pb2, json_format

    from alerts.api.conditions import timeframe_to_proto
    from alerts.api.convert import MODE_ENUM
    from alerts.v1 import rules_pb2, service_pb2

    stub = _client(args)
    if args.action == "create":
        rule = rules_pb2.Rule(symbol=args.symbol, condition_text=args.condition,
                              trigger_mode=MODE_ENUM[args.mode], display_name=args.name or "",
                              timeframe=timeframe_to_proto(args.timeframe),
                              channels=args.channel or [], max_fires=args.max_fires,
                              hysteresis=args.hysteresis,
                              message_template=args.message or "")
        if args.cooldown is not None:
            rule.cooldown.FromMilliseconds(round(args.cooldown * 1000))
        if args.hold_for is not None:
            rule.hold_for.FromMilliseconds(round(args.hold_for * 1000))
        out = stub.CreateRule(service_pb2.CreateRuleRequest(rule=rule, rule_id=args.id or ""))
        print(out.name)
    elif args.action == "list":
        token = ""
        while True:
            page = stub.ListRules(service_pb2.ListRulesRequest(
                page_size=200, page_token=token, filter=args.filter, order_by=args.order_by))
            for r in page.rules:
                print(f"{r.name}\t{r.symbol}\t{rules_pb2.Rule.State.Name(r.state)}\t"
                      f"{r.condition_text}")
            token = page.next_page_token
            if not token:
                break
    elif args.action == "get":
        out = stub.GetRule(service_pb2.GetRuleRequest(name=f"rules/{args.id}"))
        print(json_format.MessageToJson(out))
    elif args.action == "delete":
        stub.DeleteRule(service_pb2.DeleteRuleRequest(name=f"rules/{args.id}"))
    elif args.action in ("pause", "resume"):
        out = stub.UpdateRule(service_pb2.UpdateRuleRequest(
            rule=rules_pb2.Rule(name=f"rules/{args.id}", paused=args.action == "pause"),
            update_mask=field_mask_pb2.FieldMask(paths=["paused"])))
        print(f"{out.name}\t{rules_pb2.Rule.State.Name(out.state)}")
    else:
        rule = rules_pb2.Rule(symbol=args.symbol, condition_text=args.condition)
        out = stub.ValidateRule(service_pb2.ValidateRuleRequest(rule=rule))
        print(out.canonical_text)
        for w in out.warnings:
            print(f"warning: {w.reason}: {w.message} ({w.field})", file=sys.stderr)
    return 0


def _cmd_tail(args: argparse.Namespace) -> int:
    from alerts.v1 import alerts_pb2, service_pb2

    req = service_pb2.StreamAlertsRequest()
    if args.resume_after is not None:
        req.resume_after = args.resume_after
    for msg in _client(args).StreamAlerts(req):
        if msg.WhichOneof("payload") == "alert":
            a = msg.alert
            # the rule; for other alerts the resource they concern, else their kind
            about = a.rule or a.system.resource or alerts_pb2.AlertKind.Name(a.kind)
            print(f"{a.id}\t{a.event_time.ToJsonString()}\t{a.symbol}\t{about}\t{a.message}",
                  flush=True)
    return 0


def _cmd_deliveries(args: argparse.Namespace) -> int:
    from alerts.v1 import deliveries_pb2, service_pb2

    stub = _client(args)
    parent = args.channel if args.channel.startswith("channels/") else f"channels/{args.channel}"
    if args.action == "redeliver":
        reply = stub.RedeliverDeadLetters(service_pb2.RedeliverDeadLettersRequest(
            parent=parent, alert_ids=args.alert or []))
        print(f"redelivered {reply.redelivered_count}")
        return 0
    state = f"STATE_{args.state.upper()}" if args.state else None
    token = ""
    while True:
        page = stub.ListDeliveries(service_pb2.ListDeliveriesRequest(
            parent=parent, state=state, page_size=500, page_token=token))
        for d in page.deliveries:
            last = d.attempts[-1] if d.attempts else None
            status = f"{last.status_code}" if last is not None else "-"
            print(f"{d.alert_id}\t{deliveries_pb2.Delivery.State.Name(d.state)[6:]}\t"
                  f"{d.attempt_count}\t{status}\t{d.last_error.message}")
        token = page.next_page_token
        if not token:
            return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="alerts", description=__doc__.split("\n\n")[0])
    parser.add_argument("--default-venue", default="binance",
                        help="venue of a bare symbol such as BTCUSDT (default: binance)")
    sub = parser.add_subparsers(dest="command", required=True)

    val = sub.add_parser("validate", help="parse and compile a rule condition")
    val.add_argument("condition")
    val.add_argument("--symbol", default="binance:BTCUSDT")
    val.add_argument("--mode", default="ON_TRUE", choices=sorted(MODES))
    val.add_argument("--timeframe")
    val.set_defaults(func=_cmd_validate)

    bt = sub.add_parser("backtest", help="run rules over recorded trades or klines")
    bt.add_argument("files", nargs="+", help="CSV files (gzip or plain)")
    bt.add_argument("--rule", action="append", required=True, help="a condition (repeatable)")
    bt.add_argument("--symbol", required=True, help="the rules' symbol, e.g. binance:BTCUSDT")
    bt.add_argument("--mode", default="ON_TRUE", choices=sorted(MODES))
    bt.add_argument("--timeframe")
    bt.add_argument("--cooldown-ms", type=int)
    bt.add_argument("--bar-timeframe", default="1m", help="timeframe of kline files")
    bt.add_argument("--no-fill-gaps", action="store_true",
                    help="no flat bars for intervals without trades (stock sessions)")
    bt.set_defaults(func=_cmd_backtest)

    serve = sub.add_parser("serve", help="run the service")
    serve.add_argument("--config", help="TOML file (keys as in alerts.config.Config)")
    serve.add_argument("--grpc-listen", help="host:port for gRPC (default 127.0.0.1:50051)")
    serve.add_argument("--metrics-listen", help="host:port for /metrics ('' for none)")
    serve.add_argument("--store", help="sqlite:///path or postgresql://user@host/db")
    serve.add_argument("--ws-listen", help="host:port for WebSocket alerts ('' for none)")
    serve.add_argument("--venue", dest="default_venue_serve",
                       help="venue of a bare symbol (default binance)")
    serve.set_defaults(func=_cmd_serve)

    rules = sub.add_parser("rules", help="manage rules on a running server")
    rules.add_argument("--server", default="127.0.0.1:50051")
    rsub = rules.add_subparsers(dest="action", required=True)
    create = rsub.add_parser("create")
    create.add_argument("--symbol", required=True)
    create.add_argument("--condition", required=True)
    create.add_argument("--mode", default="ON_TRUE", choices=sorted(MODES))
    create.add_argument("--timeframe")
    create.add_argument("--id")
    create.add_argument("--name")
    create.add_argument("--channel", action="append",
                        help="a channel the rule's alerts go to (repeatable)")
    create.add_argument("--cooldown", type=float, metavar="SECONDS",
                        help="no second fire within this long (EVERY_TIME default: 1)")
    create.add_argument("--max-fires", type=int, default=0, help="complete after N fires")
    create.add_argument("--hold-for", type=float, metavar="SECONDS",
                        help="fire only once the condition has held this long")
    create.add_argument("--hysteresis", type=float, default=0.0, metavar="BAND",
                        help="re-arm only once the condition is false by this margin")
    create.add_argument("--message", help="message template, e.g. '{{symbol}} at {{price}}'")
    listing = rsub.add_parser("list")
    listing.add_argument("--filter", default="",
                         help='AIP-160 filter, e.g. \'symbol = BTCUSDT AND state = ACTIVE\'')
    listing.add_argument("--order-by", default="", help="e.g. 'display_name, create_time desc'")
    for action in ("get", "delete", "pause", "resume"):
        rsub.add_parser(action).add_argument("id")
    check = rsub.add_parser("validate")
    check.add_argument("--symbol", default="binance:BTCUSDT")
    check.add_argument("--condition", required=True)
    rules.set_defaults(func=_cmd_rules)

    add_channels_parser(sub)

    token = sub.add_parser("token", help="make a WebSocket client token")
    tsub = token.add_subparsers(dest="action", required=True)
    tcreate = tsub.add_parser("create", help="print a JWT naming OWNER, signed with "
                                             "ws_jwt_secret")
    tcreate.add_argument("--owner", required=True)
    tcreate.add_argument("--ttl", type=float, default=86_400.0,
                         help="seconds the token is valid (default: one day)")
    tcreate.add_argument("--config", help="TOML file holding ws_jwt_secret")
    tcreate.set_defaults(func=_cmd_token)
    add_exchange_parser(sub)
    demo = sub.add_parser("demo", help="the replay exchange, the service and sample rules: "
                                       "alerts within a minute, no network")
    demo.add_argument("files", nargs="*",
                      help="recorded trade files to replay (default: a seeded random walk)")
    demo.add_argument("--seconds", type=float, default=60.0,
                      help="how long to run (0: until Ctrl-C; default 60)")
    demo.add_argument("--speed", type=float, default=30.0,
                      help="replay speed (default 30: a minute bar every 2 s)")
    demo.add_argument("--symbols", type=int, default=8, help="random-walk symbols (default 8)")
    demo.add_argument("--rate", type=float, default=10.0,
                      help="random-walk trades per second of replay time (default 10)")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--drop-after", type=float, default=0.0, metavar="SECONDS",
                      help="cut the exchange's connections once after SECONDS: the source "
                           "reconnects and backfills, bots get DATA_QUALITY alerts")
    demo.set_defaults(func=_cmd_demo)

    tail = sub.add_parser("tail", help="print alerts as they are committed")
    tail.add_argument("--server", default="127.0.0.1:50051")
    tail.add_argument("--resume-after", type=int)
    tail.set_defaults(func=_cmd_tail)

    dlv = sub.add_parser("deliveries", help="a channel's deliveries and dead letters")
    dlv.add_argument("--server", default="127.0.0.1:50051")
    dsub = dlv.add_subparsers(dest="action", required=True)
    dlist = dsub.add_parser("list", help="alert id, state, attempts, last status, last error")
    dlist.add_argument("channel", help="channel id or channels/{id}")
    dlist.add_argument("--state", choices=("pending", "delivered", "dead"))
    redo = dsub.add_parser("redeliver", help="dead letters back to pending")
    redo.add_argument("channel", help="channel id or channels/{id}")
    redo.add_argument("--alert", type=int, action="append",
                      help="only this alert's dead letter (repeatable)")
    dlv.set_defaults(func=_cmd_deliveries)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (CliError, AlertsError) as exc:
        print(f"alerts: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # grpc.RpcError from the client commands
        code = getattr(exc, "code", None)
        if code is None:
            raise
        print(f"alerts: error: {code().name}: {exc.details()}", file=sys.stderr)  # type: ignore[attr-defined]
        return EXIT_USAGE


if __name__ == "__main__":
    # run the importable module, not this __main__ copy: sub-command modules raise
    # alerts.cli.CliError, which must be the class main() catches
    from alerts.cli import main as _main

    sys.exit(_main())
