"""The MQTT 5 subscriber (nakhon.iot.wire): packet codec, and against the real Mosquitto the
receive maximum, batched acks and redelivery of what was not acknowledged."""

from __future__ import annotations

import asyncio
import uuid

import aiomqtt
import pytest

from nakhon.iot.wire import (
    Message,
    WireClient,
    WireError,
    _Protocol,
    connect_packet,
    puback_packets,
    subscribe_packet,
)
from tests.iot.conftest import forget_session, mqtt_host_port


def _publish_packet(topic: str, payload: bytes, mid: int, qos: int = 1,
                    props: bytes = b"") -> bytes:
    t = topic.encode()
    body = len(t).to_bytes(2, "big") + t + (mid.to_bytes(2, "big") if qos else b"")
    body += bytes([len(props)]) + props + payload
    n, length = len(body), b""
    while True:
        n, byte = divmod(n, 128)
        length += bytes([byte | (0x80 if n else 0)])
        if not n:
            break
    return bytes([0x30 | (qos << 1)]) + length + body


def test_codec() -> None:
    pkt = connect_packet("c1", keepalive=30, clean_start=False, session_expiry=60,
                         receive_max=500, username="u", password="p")
    assert pkt[0] == 0x10 and pkt[2:8] == b"\x00\x04MQTT" and pkt[8] == 5
    assert pkt[9] == 0xC0  # user name + password, no clean start
    assert b"\x11\x00\x00\x00\x3c" in pkt and b"\x21\x01\xf4" in pkt
    assert subscribe_packet(1, ["/a/+"], 1) == b"\x82\x0a\x00\x01\x00\x00\x04/a/+\x01"
    assert puback_packets([1, 0, 258]) == b"\x40\x02\x00\x01\x40\x02\x01\x02"


async def test_parser_reassembles_packets_split_anywhere() -> None:
    got: list[Message] = []
    proto = _Protocol(got.extend)
    big = b"x" * 300  # a two-byte remaining length
    stream = (_publish_packet("/k/d1/attrs", b'{"t":1}', 7)
              + _publish_packet("/k/d2/attrs", big, 8, props=b"\x01\x01")
              + b"\xd0\x00"  # PINGRESP
              + _publish_packet("/k/d3/attrs", b"t|3", 0, qos=0))
    for cut in (1, 2, 3, 7, 40, len(stream) - 1):
        got.clear()
        proto.buffer = b""
        proto.data_received(stream[:cut])
        proto.data_received(stream[cut:])
        assert got == [Message("/k/d1/attrs", b'{"t":1}', 7, 1),
                       Message("/k/d2/attrs", big, 8, 1),
                       Message("/k/d3/attrs", b"t|3", 0, 0)], cut
    assert proto.buffer == b""


async def test_malformed_or_disconnect_closes() -> None:
    proto = _Protocol(lambda batch: None)
    proto.data_received(b"\x30\xff\xff\xff\xff\x01")  # remaining length of 5 bytes
    with pytest.raises(WireError):
        proto.closed.result()
    proto = _Protocol(lambda batch: None)
    proto.data_received(b"\xe0\x01\x8e")  # DISCONNECT, session taken over
    with pytest.raises(WireError, match="0x8e"):
        proto.closed.result()


async def _publish(topic: str, n: int) -> None:
    host, port = mqtt_host_port()
    async with aiomqtt.Client(host, port, identifier=f"dev-{uuid.uuid4().hex[:8]}") as c:
        for i in range(n):
            await c.publish(topic, str(i), qos=1)


async def _receive(client_id: str, topic: str, *, until: int,
                   within: float = 10.0) -> tuple[WireClient, list[Message]]:
    got: list[Message] = []
    arrived = asyncio.Event()

    def on_messages(batch: list[Message]) -> None:
        got.extend(batch)
        if len(got) >= until:
            arrived.set()

    client = WireClient(on_messages)
    host, port = mqtt_host_port()
    await client.connect(host, port, client_id=client_id, receive_max=1000)
    await client.subscribe([topic], 1)
    await _wait(arrived, within)
    return client, got


async def _wait(event: asyncio.Event, within: float) -> bool:
    try:
        await asyncio.wait_for(event.wait(), within)
    except TimeoutError:
        return False
    return True


async def test_receive_maximum_acks_and_redelivery(mosquitto: str) -> None:
    client_id = f"wire-test-{uuid.uuid4().hex[:8]}"
    topic = f"/wire{uuid.uuid4().hex[:8]}/d1/attrs"
    try:
        client, _ = await _receive(client_id, topic, until=0, within=0.1)
        await _publish(topic, 200)
        await asyncio.sleep(0.5)
        client.close()
        # Nothing acked: far more than MQTT 3.1.1's 20 were in flight at once, and on
        # reconnect (same session) the broker sends all 200 again.
        client, got = await _receive(client_id, topic, until=200)
        assert len(got) == 200 and all(m.qos == 1 and m.mid for m in got)
        assert [int(m.payload) for m in got] == list(range(200))
        client.ack(m.mid for m in got[:150])  # one write for 150 PUBACKs
        await asyncio.sleep(0.3)
        await client.disconnect()
        client, got = await _receive(client_id, topic, until=50)
        assert sorted(int(m.payload) for m in got) == list(range(150, 200))
        client.ack(m.mid for m in got)
        await asyncio.sleep(0.3)
        await client.disconnect()
        client, got = await _receive(client_id, topic, until=1, within=0.5)
        assert got == []
        await client.disconnect()
        client.ack([1])  # after the connection: ignored, no error
    finally:
        await forget_session(client_id)


async def test_refused_connection() -> None:
    client = WireClient(lambda batch: None, reply_within=2.0)
    with pytest.raises(WireError):
        await client.connect("127.0.0.1", 1, client_id="nobody")
