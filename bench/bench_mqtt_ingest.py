"""MQTT ingest, end to end: device publish → committed (queryable) in the broker.

Nakhon runs in this process (the app with MQTT on, as `nakhon serve` runs it, on uvloop);
the devices are a separate process (raw QoS 1 packets on a socket, or paho-mqtt) publishing
JSON messages with 3 attributes each to a real Mosquitto at a fixed rate. Each message carries
its publish time as ``TimeInstant``, so latency = commit time − publish time, measured for every
message when its batch commits (what is committed is queryable). At the end the API is asked for
the entities to check the last values are there. The raw insert rate of the engine
(storage.write of upserts with 3 attributes, batches of 1000, no MQTT, no parsing) is reported
beside it.

    python bench/bench_mqtt_ingest.py --engine sqlite --rate 5000 --seconds 20  # private Mosquitto
    python bench/bench_mqtt_ingest.py --engine postgres   # a throwaway database; or --dsn URL

Two cores: the publisher process and Mosquitto take CPU from Nakhon; see bench/README.md. By
default the bench starts a Mosquitto of its own (default limits, a free port): on the shared
broker other clients' messages reach the consumer too (--broker shared).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing as mp
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import orjson

from nakhon.broker import ops
from nakhon.broker.model import Entity
from nakhon.config import load_settings
from nakhon.storage import storage_for
from nakhon.storage.base import WriteOp

HOST, PORT = "127.0.0.1", 1883


def _body(sent: int) -> bytes:
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return orjson.dumps({"t": 20 + sent % 15, "h": 40 + sent % 50, "p": sent,
                         "TimeInstant": now})


def lean_publisher(apikey: str, devices: int, rate: int, seconds: float, ready: Any,
                   port: int) -> None:
    """The devices, cheaply: MQTT 3.1.1 QoS 1 PUBLISH packets written straight to a socket
    (a tick's worth in one write), PUBACKs counted by a reader thread. The same messages as
    :func:`publisher` at a tenth of its CPU, so the load generator takes less of the two cores
    that Nakhon and Mosquitto need; waits for every PUBACK (≤ 10 s) before disconnecting."""
    sock = socket.create_connection((HOST, port))
    cid = f"bench-pub-{os.getpid()}".encode()
    # CONNECT, MQTT 3.1.1, clean session, no keepalive.
    body = b"\x00\x04MQTT\x04\x02\x00\x00" + len(cid).to_bytes(2, "big") + cid
    sock.sendall(bytes([0x10, len(body)]) + body)
    if sock.recv(4) != b"\x20\x02\x00\x00":
        raise RuntimeError("the broker refused the publisher")
    acked = [0]

    def count_pubacks() -> None:
        got = 0
        while data := sock.recv(65536):
            got += len(data)  # the broker sends this client nothing but 4-byte PUBACKs
            acked[0] = got // 4

    threading.Thread(target=count_pubacks, daemon=True).start()
    topics = [_mqtt_string(f"/json/{apikey}/dev{i}/attrs") for i in range(devices)]
    ready.wait()
    per_tick, total, sent = max(1, rate // 100), int(rate * seconds), 0
    start = time.perf_counter()
    while sent < total:
        packets = []
        for _ in range(min(per_tick, total - sent)):
            rest = topics[sent % devices] + (sent % 65535 + 1).to_bytes(2, "big") + _body(sent)
            packets.append(b"\x32" + _varint(len(rest)) + rest)
            sent += 1
        sock.sendall(b"".join(packets))
        delay = start + (sent / rate) - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    deadline = time.monotonic() + 10
    while acked[0] < total and time.monotonic() < deadline:
        time.sleep(0.05)
    sock.sendall(b"\xe0\x00")
    sock.close()


def _mqtt_string(text: str) -> bytes:
    raw = text.encode()
    return len(raw).to_bytes(2, "big") + raw


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, byte = divmod(n, 128)
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def publisher(apikey: str, devices: int, rate: int, seconds: float, ready: Any,
              port: int) -> None:
    """The devices: ``rate`` messages/s for ``seconds``, round-robin over ``devices`` (paho)."""
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{os.getpid()}")
    client.max_inflight_messages_set(0)  # 0: no limit; QoS 1 acks come back asynchronously
    client.max_queued_messages_set(0)
    client.connect(HOST, port)
    client.loop_start()
    ready.wait()
    tick = 0.01
    per_tick = max(1, int(rate * tick))
    total = int(rate * seconds)
    sent = 0
    start = time.perf_counter()
    while sent < total:
        for _ in range(min(per_tick, total - sent)):
            client.publish(f"/json/{apikey}/dev{sent % devices}/attrs", _body(sent), qos=1)
            sent += 1
        # Keep the schedule: sleep to the next tick, not a fixed interval.
        delay = start + (sent / rate) - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    time.sleep(1.0)
    client.loop_stop()
    client.disconnect()


async def raw_insert_rate(url: str, n: int = 20000, batch: int = 1000) -> float:
    """Upserts of 3 attributes per second straight into storage.write."""
    storage = storage_for(url, write_batch_max=batch)
    await storage.open()
    tenant = f"raw{uuid.uuid4().hex[:6]}"
    try:
        start = time.perf_counter()
        for off in range(0, n, batch):
            writes = []
            for i in range(off, off + batch):
                attrs = {f"https://uri.etsi.org/ngsi-ld/default-context/{a}": [
                    {"type": "Property", "value": i, "observedAt": "2024-01-01T00:00:00.000Z"}]
                    for a in ("t", "h", "p")}
                eid = f"urn:ngsi-ld:Raw:{i % 1000}"
                writes.append(WriteOp(tenant, eid, ops.upsert_entity(
                    Entity(eid, ["https://uri.etsi.org/ngsi-ld/default-context/Raw"], attrs),
                    mode="update")))
            await storage.write(writes)
        return n / (time.perf_counter() - start)
    finally:
        await storage.close()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.engine == "postgres" and not args.dsn:
        from nakhon.storage.postgres.testing import temporary_database

        async with temporary_database("nakhon_bench_mqtt") as dsn:
            args.dsn = dsn
            try:
                return await _run(args)
            finally:
                args.dsn = ""
    return await _run(args)


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    import httpx

    from nakhon.app import create_app

    data_dir = Path(tempfile.mkdtemp(prefix="nakhon-bench-"))
    url = args.dsn if args.engine == "postgres" else f"sqlite:///{data_dir / 'nakhon.db'}"
    client_id = f"nakhon-bench-{uuid.uuid4().hex[:8]}"
    args.client_id = client_id
    settings = load_settings(env={}, database_url=url, data_dir=data_dir, auth="off",
                             mqtt_url=f"mqtt://{HOST}:{args.port}", mqtt_client_id=client_id,
                             mqtt_ack_after_commit=not args.ack_on_receipt)
    app = create_app(settings)
    tenant = f"bench{uuid.uuid4().hex[:6]}"
    apikey = f"bench{uuid.uuid4().hex[:8]}"
    latencies: list[float] = []
    commits: list[float] = []
    sizes: list[int] = []
    published = [float("inf"), 0.0]  # first and last publish time of what was committed
    async with app.router.lifespan_context(app):
        rt = app.state.iot
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://b") as http:
            h = {"NGSILD-Tenant": tenant}
            await http.post("/nakhon/v1/iot/services", headers=h,
                            json={"apikey": apikey, "entity_type": "Sensor"})
            for off in range(0, args.devices, 500):
                devs = [{"device_id": f"dev{i}", "apikey": apikey}
                        for i in range(off, min(off + 500, args.devices))]
                r = await http.post("/nakhon/v1/iot/devices", headers=h, json={"devices": devs})
                assert r.status_code == 201, r.text
            write = rt.batcher._write

            async def timed_write(items: Any) -> Any:
                results = await write(items)
                now = time.time()
                commits.append(now)
                sizes.append(len(items))
                for m in items:
                    inst = next(iter(m.attrs.values()))[0]
                    sent = datetime.fromisoformat(inst["observedAt"]).timestamp()
                    latencies.append(now - sent)
                    published[0] = min(published[0], sent)
                    published[1] = max(published[1], sent)
                return results

            rt.batcher._write = timed_write
            await rt.mqtt.connected.wait()
            total = int(args.rate * args.seconds)
            ready = mp.Event()
            proc = mp.Process(target=lean_publisher if args.publisher == "lean" else publisher,
                              args=(apikey, args.devices, args.rate, args.seconds, ready,
                                    args.port))
            proc.start()
            ready.set()
            t0 = time.time()
            gc.callbacks.append(_gc_clock)
            cpu0 = _cpu(resource.RUSAGE_SELF)
            threads0 = _thread_cpu()
            deadline = t0 + args.seconds + 60
            while len(latencies) < total and time.time() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.1)
            cpu_nakhon = _cpu(resource.RUSAGE_SELF) - cpu0
            threads1 = _thread_cpu()
            gc.callbacks.remove(_gc_clock)
            proc.join(timeout=10)
            cpu_pub = _cpu(resource.RUSAGE_CHILDREN)
            r = await http.get("/ngsi-ld/v1/entities?type=Sensor&limit=1&count=true",
                               headers=h)
            queryable = int(r.headers.get("NGSILD-Results-Count", "0"))
            stats = rt.stats.snapshot()
            letters = [(d.reason, d.detail[:120]) for d in await rt.stats.letters(None, 3, 0)]
    # Sustained rate: messages over the span from the first to the last commit.
    span = (max(commits) - min(commits)) if len(commits) > 1 else float("nan")
    # Steady rate: commits in the middle of the run (2 s after the first commit to 2 s before
    # the last), free of the start-up batch and of the last batch's latency, which the
    # first-to-last span counts against the rate even for a consumer that keeps up.
    lo, hi = min(commits, default=0.0) + 2, max(commits, default=0.0) - 2
    mid = sum(n for t, n in zip(commits, sizes, strict=True) if lo < t <= hi)
    steady = mid / (hi - lo) if hi - lo > 1 else float("nan")
    lat = sorted(latencies)

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(p * len(lat)))] if lat else float("nan")

    raw = await raw_insert_rate(url)
    return {
        "engine": args.engine, "target": args.rate, "sent": total, "committed": len(latencies),
        "rate": len(latencies) / span if span == span and span > 0 else float("nan"),
        "steady": steady,
        # What the publisher achieved (it may fall behind its schedule on a busy machine).
        "offered": len(latencies) / (published[1] - published[0])
        if published[1] > published[0] else float("nan"),
        "p50": pct(0.5), "p99": pct(0.99), "max": lat[-1] if lat else float("nan"),
        "mean_batch": statistics.mean([len(latencies) / max(1, len(commits))]),
        "cpu_us": cpu_nakhon / max(1, len(latencies)) * 1e6,
        "pub_us": cpu_pub / max(1, total) * 1e6,
        "load": os.getloadavg()[0],
        "gc_us": _GC["total"] / max(1, len(latencies)) * 1e6,
        "threads": {name: (threads1[name] - threads0.get(name, 0.0)) / max(1, len(latencies))
                    * 1e6 for name in threads1},
        "entities": queryable, "rejected": stats["rejectedTotal"], "raw": raw,
        "reasons": stats["rejected"], "letters": letters,
        "ack": "on receipt" if args.ack_on_receipt else "after commit",
        "publisher": args.publisher,
    }


def _private_broker() -> tuple[subprocess.Popen[bytes], int]:
    """Mosquitto with its default limits on a free port, persistence as the machine's has it."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        port = int(s.getsockname()[1])
    directory = Path(tempfile.mkdtemp(prefix="nakhon-bench-mqtt-"))
    conf = directory / "mosquitto.conf"
    conf.write_text(f"listener {port} {HOST}\nallow_anonymous true\npersistence true\n"
                    f"persistence_location {directory}/\n")
    proc = subprocess.Popen([shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(conf)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection((HOST, port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.terminate()
    raise RuntimeError("private mosquitto did not start")


def _cpu(who: int) -> float:
    use = resource.getrusage(who)
    return use.ru_utime + use.ru_stime


_GC = {"total": 0.0, "start": 0.0, "gen0": 0, "gen1": 0, "gen2": 0}


def _gc_clock(phase: str, info: dict[str, Any]) -> None:
    """CPU time inside the cyclic garbage collector (of the thread that runs it)."""
    if phase == "start":
        _GC["start"] = time.thread_time()
    else:
        _GC["total"] += time.thread_time() - _GC["start"]
        _GC[f"gen{info['generation']}"] += 1


def _thread_cpu() -> dict[str, float]:
    """CPU seconds per thread name of this process (Linux /proc; empty elsewhere)."""
    out: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return out
    names = {str(t.native_id): t.name for t in threading.enumerate()}
    for tid in tasks:
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        name = names.get(tid, "other")
        fields = stat[stat.rindex(")") + 2:].split()
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


async def forget(client_id: str, port: int) -> None:
    import aiomqtt

    async with aiomqtt.Client(HOST, port, identifier=client_id, clean_session=True):
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engine", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--dsn", default="",
                        help="PostgreSQL database to use; default: a throwaway database, dropped "
                             "afterwards (nothing is left in a real one)")
    parser.add_argument("--rate", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--ack-on-receipt", action="store_true")
    parser.add_argument("--broker", choices=["private", "shared"], default="private",
                        help="a Mosquitto of its own (default configuration, free port), or the "
                        "machine's at 127.0.0.1:1883, where other clients' traffic arrives too")
    parser.add_argument("--publisher", choices=["lean", "paho"], default="lean",
                        help="load generator: raw QoS 1 packets on a socket, or paho-mqtt")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    args.client_id = None
    broker = None
    if args.broker == "private":
        broker = _private_broker()
        args.port = broker[1]
    else:
        args.port = PORT
    try:
        res = asyncio.run(run(args))
    finally:
        if broker is not None:
            broker[0].terminate()
            broker[0].wait(timeout=10)
            args.client_id = None  # the session went with the broker
        if args.client_id:
            # The persistent session would otherwise keep queueing every device message.
            asyncio.run(forget(args.client_id, args.port))
    print(f"publisher: {res['publisher']}, broker: {args.broker}, published (of what was "
          f"committed) at {res['offered']:.0f} msg/s")
    print("| engine | ack | target msg/s | sent | committed | sustained msg/s | steady msg/s "
          "| p50 s | p99 s "
          "| max s | entities | rejected | raw insert upserts/s | mean batch "
          "| Nakhon CPU µs/msg | publisher CPU µs/msg | load |")
    print("| --- " * 17 + "|")
    print(f"| {res['engine']} | {res['ack']} | {res['target']} | {res['sent']} | "
          f"{res['committed']} | {res['rate']:.0f} | {res['steady']:.0f} | {res['p50']:.3f} | "
          f"{res['p99']:.3f} | "
          f"{res['max']:.3f} | {res['entities']} | {res['rejected']} | {res['raw']:.0f} | "
          f"{res['mean_batch']:.0f} | {res['cpu_us']:.0f} | {res['pub_us']:.0f} | "
          f"{res['load']:.1f} |")
    if res["rejected"]:
        print(f"rejected by reason: {res['reasons']}; newest letters: {res['letters']}")
    busy = {k: round(v) for k, v in sorted(res["threads"].items(), key=lambda kv: -kv[1])
            if v >= 1}
    print(f"CPU µs per committed message by thread: {busy}; in the garbage collector: "
          f"{res['gc_us']:.1f} µs per message ({_GC['gen0']}/{_GC['gen1']}/{_GC['gen2']} "
          f"collections by generation, thresholds {gc.get_threshold()})")


if __name__ == "__main__":
    main()
