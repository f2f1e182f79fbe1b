"""``alerts channels create|list|get|update|delete|test``: thin gRPC clients for channels.

The kind is chosen by its flag on ``create``: ``--webhook URL``, ``--websocket``,
``--email ADDR`` (repeatable), ``--sms +E164`` (repeatable), ``--discord URL``,
``--telegram-token T --telegram-chat C``. ``create`` prints the channel's name,
and for a webhook whose secret the server generated, ``signing_secret<TAB>whsec_...``
on a second line (the only time it is shown). ``update`` changes exactly the fields
whose flags are given. ``test ID [--message TEXT]`` sends one test message through
the channel and prints ``delivered in N ms``; an undelivered test prints
``alerts: not delivered: CODE: why`` on stderr and exits 1. Any error, the server's
included, is one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
from typing import Any

_KINDS = frozenset({"webhook", "websocket", "email", "sms", "discord", "telegram"})


def add_parser(sub: Any) -> None:
    """Add the ``channels`` command to the ``alerts`` sub-command set ``sub``."""
    channels = sub.add_parser("channels", help="manage delivery channels on a running server")
    channels.add_argument("--server", default="127.0.0.1:50051")
    csub = channels.add_subparsers(dest="action", required=True)
    for action in ("create", "update"):
        p = csub.add_parser(action)
        if action == "update":
            p.add_argument("id", help="channel id or channels/{id}")
            p.add_argument("--etag", help="refuse the change if the channel changed since")
        else:
            p.add_argument("--id", help="the channel id (default: server-assigned)")
        p.add_argument("--webhook", metavar="URL")
        p.add_argument("--secret", help="webhook signing secret, whsec_... (default: generated)")
        p.add_argument("--header", action="append", metavar="NAME=VALUE",
                       help="extra webhook header (repeatable)")
        if action == "create":
            p.add_argument("--websocket", action="store_true")
        p.add_argument("--email", action="append", metavar="ADDRESS")
        p.add_argument("--subject", help="email subject template")
        p.add_argument("--sms", action="append", metavar="+E164")
        p.add_argument("--discord", metavar="URL", help="Discord webhook URL")
        p.add_argument("--username", help="Discord user name")
        p.add_argument("--telegram-token", metavar="TOKEN")
        p.add_argument("--telegram-chat", metavar="CHAT")
        p.add_argument("--name", help="display name")
        p.add_argument("--template", help="message template, e.g. '{{symbol}}: {{message}}'")
        p.add_argument("--label", action="append", metavar="KEY=VALUE")
        p.add_argument("--paused", action=argparse.BooleanOptionalAction, default=None)
    lst = csub.add_parser("list")
    lst.add_argument("--filter", default="", help='AIP-160 filter, e.g. "state = FAILING"')
    csub.add_parser("get").add_argument("id")
    delete = csub.add_parser("delete")
    delete.add_argument("id")
    delete.add_argument("--force", action="store_true",
                        help="also remove the channel from the rules that name it")
    test = csub.add_parser("test", help="send one test message through the channel")
    test.add_argument("id")
    test.add_argument("--message", default="", help="text of the test alert")
    channels.set_defaults(func=run)


def _pairs(values: list[str] | None, flag: str) -> dict[str, str]:
    from alerts.cli import CliError

    out: dict[str, str] = {}
    for value in values or ():
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise CliError(f"{flag} takes KEY=VALUE, got {value!r}")
        out[key] = val
    return out


def _name(channel_id: str) -> str:
    return channel_id if channel_id.startswith("channels/") else f"channels/{channel_id}"


def _channel(args: argparse.Namespace) -> tuple[Any, list[str]]:
    """The Channel the flags describe and the update-mask paths they set."""
    from alerts.cli import CliError
    from alerts.v1 import channels_pb2

    msg = channels_pb2.Channel()
    paths: list[str] = []

    def put(path: str, value: object, target: Any, attr: str) -> None:
        if value is None:
            return
        if isinstance(value, list):
            getattr(target, attr).extend(value)
        elif isinstance(value, dict):
            getattr(target, attr).update(value)
        else:
            setattr(target, attr, value)
        paths.append(path)

    put("display_name", args.name, msg, "display_name")
    put("message_template", args.template, msg, "message_template")
    put("paused", args.paused, msg, "paused")
    put("labels", _pairs(args.label, "--label") or None, msg, "labels")
    put("webhook.url", args.webhook, msg.webhook, "url")
    put("webhook.signing_secret", args.secret, msg.webhook, "signing_secret")
    put("webhook.headers", _pairs(args.header, "--header") or None, msg.webhook, "headers")
    if getattr(args, "websocket", False):
        msg.websocket.SetInParent()
        paths.append("websocket")
    put("email.to_addresses", args.email, msg.email, "to_addresses")
    put("email.subject_template", args.subject, msg.email, "subject_template")
    put("sms.phone_numbers", args.sms, msg.sms, "phone_numbers")
    put("discord.webhook_url", args.discord, msg.discord, "webhook_url")
    put("discord.username", args.username, msg.discord, "username")
    put("telegram.bot_token", args.telegram_token, msg.telegram, "bot_token")
    put("telegram.chat_id", args.telegram_chat, msg.telegram, "chat_id")
    if len({p.split(".")[0] for p in paths} & _KINDS) > 1:
        raise CliError("give the flags of one channel kind only")
    return msg, paths


def run(args: argparse.Namespace) -> int:
    """One ``alerts channels`` command (a server's error is reported by ``alerts.cli.main``)."""
    import sys

    from google.protobuf import field_mask_pb2, json_format
    from google.rpc import code_pb2

    from alerts.cli import CliError, _client
    from alerts.v1 import channels_pb2, service_pb2

    stub = _client(args)
    if args.action == "create":
        msg, _ = _channel(args)
        if msg.WhichOneof("config") is None:
            raise CliError("give the channel's kind: --webhook URL, --websocket, --email ADDR, "
                           "--sms +E164, --discord URL or --telegram-token T --telegram-chat C")
        out = stub.CreateChannel(service_pb2.CreateChannelRequest(channel=msg,
                                                                  channel_id=args.id or ""))
        print(out.name)
        if out.webhook.signing_secret:
            print(f"signing_secret\t{out.webhook.signing_secret}")
    elif args.action == "update":
        msg, paths = _channel(args)
        if not paths:
            raise CliError("nothing to change: give at least one field flag")
        msg.name = _name(args.id)
        msg.etag = args.etag or ""
        out = stub.UpdateChannel(service_pb2.UpdateChannelRequest(
            channel=msg, update_mask=field_mask_pb2.FieldMask(paths=paths)))
        print(out.name)
    elif args.action == "list":
        token = ""
        while True:
            page = stub.ListChannels(service_pb2.ListChannelsRequest(
                page_size=200, page_token=token, filter=args.filter))
            for c in page.channels:
                state = channels_pb2.Channel.State.Name(c.state).removeprefix("STATE_")
                print(f"{c.name}\t{c.WhichOneof('config')}\t{state}\t{c.display_name}")
            token = page.next_page_token
            if not token:
                break
    elif args.action == "get":
        out = stub.GetChannel(service_pb2.GetChannelRequest(name=_name(args.id)))
        print(json_format.MessageToJson(out))
    elif args.action == "test":
        reply = stub.TestChannel(service_pb2.TestChannelRequest(name=_name(args.id),
                                                                message=args.message))
        if not reply.delivered:
            code = code_pb2.Code.Name(reply.error.code)
            print(f"alerts: not delivered: {code}: {reply.error.message}", file=sys.stderr)
            return 1
        print(f"delivered in {reply.latency.ToMilliseconds()} ms")
    else:
        stub.DeleteChannel(service_pb2.DeleteChannelRequest(name=_name(args.id),
                                                            force=args.force))
    return 0
