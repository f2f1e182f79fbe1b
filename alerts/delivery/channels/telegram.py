"""Telegram sender: one Bot API ``sendMessage`` per attempt.

``POST {settings.telegram_api_base}/bot<token>/sendMessage`` with JSON
``{"chat_id": <int or "@channel">, "text": ...}``; the text is the rendered text and
a last line ``alert <id>``, cut to 4096 UTF-16 units; no ``parse_mode``, so alert
text can never fail entity parsing. The token never appears in an error.

Classification by the answer (HTTP status = ``error_code``): ``{"ok":true}`` ok;
429 retryable after ``parameters.retry_after`` (else ``Retry-After``), which also
pauses this chat; 400, 401, 403, 404 permanent with Telegram's description (a
group that became a supergroup names its ``migrate_to_chat_id``); other 4xx
permanent; 5xx and no answer retryable. Sends to the chat are paced to
``settings.telegram_chat_rate_per_s`` (Telegram's ~1 message/s per chat).
"""

from __future__ import annotations

import re

from alerts.delivery.channels._common import (
    http_client,
    json_object,
    paced_out,
    parse_retry_after,
    post,
    seconds_value,
    short,
    with_alert_id,
)
from alerts.delivery.channels.base import ChannelSender, Delivery, Outcome
from alerts.delivery.channels.config import DeliverySettings, TelegramConfig, config_error
from alerts.delivery.channels.pacing import Pacer

TEXT_LIMIT = 4096
_TOKEN = re.compile(r"\d{1,20}:[A-Za-z0-9_-]{1,100}")
_CHAT = re.compile(r"-?\d{1,20}|@[A-Za-z][A-Za-z0-9_]{3,31}")


class TelegramSender(ChannelSender):
    """Sends to one Telegram chat through one bot."""

    def __init__(self, config: TelegramConfig, settings: DeliverySettings) -> None:
        if not _TOKEN.fullmatch(config.bot_token):
            raise config_error("telegram", "bot_token", "must look like 123456:ABC-DEF...")
        chat = config.chat_id.strip()
        if not _CHAT.fullmatch(chat):
            raise config_error("telegram", "chat_id", "must be a number or @channelusername")
        self._chat: int | str = int(chat) if chat[0] != "@" else chat
        self._token = config.bot_token
        self._url = f"{settings.telegram_api_base}/bot{config.bot_token}/sendMessage"
        self._pacer = Pacer(settings.telegram_chat_rate_per_s, 1)
        self._max_wait_s = settings.pacing_max_wait_s
        self._client = http_client(config.timeout_s or settings.default_timeout_s,
                                   settings.user_agent)

    def payload(self, delivery: Delivery) -> dict[str, object]:
        """The JSON body for ``delivery``."""
        return {"chat_id": self._chat,
                "text": with_alert_id(delivery.text, delivery.alert.alert_id, TEXT_LIMIT)}

    async def send(self, delivery: Delivery) -> Outcome:
        wait = await self._pacer.wait_turn(self._max_wait_s)
        if wait is not None:
            return paced_out(wait)
        answer = await post(self._client, self._url, json=self.payload(delivery),
                            redact=self._token)
        if isinstance(answer, Outcome):
            return answer
        response, text, latency = answer
        body = json_object(text)
        status = response.status_code
        if status == 200 and body.get("ok") is True:
            return Outcome(ok=True, status=status, latency_s=latency)
        code = body.get("error_code")
        if isinstance(code, int) and not isinstance(code, bool) and 400 <= code < 600:
            status = code if status == 200 else status
        description = str(body.get("description") or short(text) or f"HTTP {status}")
        description = description.replace(self._token, "<redacted>")
        raw_params = body.get("parameters")
        params = raw_params if isinstance(raw_params, dict) else {}
        if status == 429:
            retry_after = seconds_value(params.get("retry_after"))
            if retry_after is None:
                retry_after = parse_retry_after(response.headers.get("retry-after"))
            if retry_after is not None:
                self._pacer.hold_for(retry_after)
            return Outcome(ok=False, status=status, latency_s=latency, retryable=True,
                           retry_after_s=retry_after, error=description)
        if status >= 500 or status == 200:  # 200 without ok: a broken answer, try again
            return Outcome(ok=False, status=status, latency_s=latency, retryable=True,
                           retry_after_s=parse_retry_after(response.headers.get("retry-after")),
                           error=description)
        if "migrate_to_chat_id" in params:
            description += f" (the chat is now {params['migrate_to_chat_id']})"
        return Outcome(ok=False, status=status, latency_s=latency, retryable=False,
                       error=description)

    async def close(self) -> None:
        await self._client.aclose()
