"""Control messages: the replies and wrapped errors of ../shared/protocols/binance.md, byte for byte."""

from __future__ import annotations

import json

import pytest
import websockets
from websockets.exceptions import InvalidStatus

from alerts.market.exchange import ReplayExchange
from alerts.market.exchange.control import METHODS, Subscriptions, handle_control

_EXPECTED = ", ".join(f"`{m}`" for m in METHODS)


def _reply(text: str, subs: Subscriptions | None = None) -> str:
    return handle_control(text, subs or Subscriptions(combined=False, max_streams=1024)).reply


def test_the_documented_exchanges() -> None:
    subs = Subscriptions(combined=False, max_streams=1024)
    assert _reply('{"method":"SUBSCRIBE","params":["btcusdt@aggTrade","btcusdt@depth"],"id":1}',
                  subs) == '{"result":null,"id":1}'
    assert _reply('{"method":"UNSUBSCRIBE","params":["btcusdt@depth"],"id":312}',
                  subs) == '{"result":null,"id":312}'
    assert _reply('{"method":"LIST_SUBSCRIPTIONS","id":3}',
                  subs) == '{"result":["btcusdt@aggTrade"],"id":3}'
    assert _reply('{"method":"SET_PROPERTY","params":["combined",true],"id":5}',
                  subs) == '{"result":null,"id":5}'
    assert _reply('{"method":"GET_PROPERTY","params":["combined"],"id":2}',
                  subs) == '{"result":true,"id":2}'


@pytest.mark.parametrize(("message", "reply"), [
    ('{"method":"GET_PROPERTY","params":["colour"],"id":7}',
     '{"error":{"code":0,"msg":"Unknown property"},"id":7}'),
    ('{"method":"SET_PROPERTY","params":["combined","yes"],"id":8}',
     '{"error":{"code":1,"msg":"Invalid value type: expected Boolean"},"id":8}'),
    ('{"method":"GET_PROPERTY","params":[5],"id":9}',
     '{"error":{"code":2,"msg":"Invalid request: property name must be a string"},"id":9}'),
    ('{"method":"LIST_SUBSCRIPTIONS","id":1.5}',
     ('{"error":{"code":2,"msg":"Invalid request: request ID must be an unsigned integer"},'
      '"id":null}')),
    ('{"method":"SUBSCRIBEX","params":[],"id":10}',
     ('{"error":{"code":2,"msg":"Invalid request: unknown variant `SUBSCRIBEX`, expected one '
      'of ' + _EXPECTED + '"},"id":10}')),
    ('{"method":"GET_PROPERTY","params":["combined","x"],"id":11}',
     '{"error":{"code":2,"msg":"Invalid request: too many parameters"},"id":11}'),
    ('{"params":[],"id":12}',
     '{"error":{"code":2,"msg":"Invalid request: missing field `method`"},"id":12}'),
    ('{"method":"SUBSCRIBE","params":["btcusdt@nope"],"id":2}',
     '{"error":{"code":2,"msg":"Invalid request: invalid stream"},"id":2}'),
    ('{"method": "SUBSCRIBE", "params": [',
     '{"error":{"code":3,"msg":"Invalid JSON: expected value at line 1 column 36"},"id":null}'),
    ('hello',
     '{"error":{"code":3,"msg":"Invalid JSON: expected value at line 1 column 1"},"id":null}'),
])
def test_errors_are_wrapped_with_the_documented_codes(message: str, reply: str) -> None:
    assert _reply(message) == reply


@pytest.mark.parametrize("request_id", [-(2 ** 63), 2 ** 63 - 1, "abc-123", None])
def test_lenient_ids_are_echoed(request_id: object) -> None:
    text = json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": request_id})
    assert json.loads(_reply(text)) == {"result": [], "id": request_id}


def test_uppercase_symbols_are_not_stream_names() -> None:
    subs = Subscriptions(combined=False, max_streams=1024)
    assert '"code":2' in _reply('{"method":"SUBSCRIBE","params":["BTCUSDT@trade"],"id":1}', subs)
    assert subs.streams == {}


def test_stream_cap_refuses_the_whole_request() -> None:
    subs = Subscriptions(combined=False, max_streams=3)
    ok = _reply('{"method":"SUBSCRIBE","params":["a@trade","b@trade"],"id":1}', subs)
    assert ok == '{"result":null,"id":1}'
    refused = _reply('{"method":"SUBSCRIBE","params":["b@trade","c@trade","d@trade"],"id":2}',
                     subs)
    assert refused == '{"error":{"code":2,"msg":"Invalid request: too many streams"},"id":2}'
    assert list(subs.streams) == ["a@trade", "b@trade"]
    assert _reply('{"method":"SUBSCRIBE","params":["b@trade","c@trade"],"id":3}',
                  subs) == '{"result":null,"id":3}'


@pytest.mark.asyncio
async def test_control_messages_over_the_wire(spot: ReplayExchange) -> None:
    async with websockets.connect(spot.ws_url + "/ws") as ws:
        await ws.send('{"method":"GET_PROPERTY","params":["combined"],"id":1}')
        assert await ws.recv() == '{"result":false,"id":1}'
        await ws.send('{"method":"SUBSCRIBE","params":["btcusdt@trade","ethusdt@kline_1m"],'
                      '"id":2}')
        assert await ws.recv() == '{"result":null,"id":2}'
        await ws.send('{"method":"LIST_SUBSCRIPTIONS","id":3}')
        assert await ws.recv() == '{"result":["btcusdt@trade","ethusdt@kline_1m"],"id":3}'
        await ws.send('{"method": "LIST')
        assert await ws.recv() == ('{"error":{"code":3,"msg":"Invalid JSON: expected value at '
                                   'line 1 column 12"},"id":null}')
    async with websockets.connect(spot.ws_url + "/stream?streams=btcusdt@trade") as ws:
        await ws.send('{"method":"GET_PROPERTY","params":["combined"],"id":"x1"}')
        assert await ws.recv() == '{"result":true,"id":"x1"}'
        await ws.send('{"method":"UNSUBSCRIBE","params":["btcusdt@trade"],"id":4}')
        assert await ws.recv() == '{"result":null,"id":4}'
        await ws.send('{"method":"LIST_SUBSCRIPTIONS","id":5}')
        assert await ws.recv() == '{"result":[],"id":5}'


@pytest.mark.asyncio
async def test_stream_urls() -> None:
    async with ReplayExchange.synthetic(2, seed=1, start_ms=0, paused=True) as ex:
        for path, status in [("/ws/BTCUSDT@trade", 400), ("/stream?streams=btcusdt@x", 400),
                             ("/elsewhere", 404)]:
            with pytest.raises(InvalidStatus) as refused:
                async with websockets.connect(ex.ws_url + path):
                    pass
            assert refused.value.response.status_code == status
        assert json.loads(refused.value.response.body)["code"] == -1000
        async with websockets.connect(ex.ws_url + "/ws/btcusdt@trade/ethusdt@kline_1h") as ws:
            await ws.send('{"method":"LIST_SUBSCRIPTIONS","id":1}')
            assert await ws.recv() == '{"result":["btcusdt@trade","ethusdt@kline_1h"],"id":1}'
            await ws.send('{"method":"GET_PROPERTY","params":["combined"],"id":2}')
            assert await ws.recv() == '{"result":false,"id":2}'
