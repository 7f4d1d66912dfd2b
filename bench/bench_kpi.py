"""Issue 4 point 7 benchmark: KPI recomputation after a day's new data, and history backfill
against the engine's raw insert rate, measured in the same run.

5,000 devices with one attribute each at 5-minute resolution is 1.44 M history rows a day,
129.6 M for 90 days. The script loads ``--days`` days (default 3), times a full recompute,
writes one more day through the real write path and times the incremental recompute (the
issue's "< 5 s after a day's new data"), then has 1 % of the devices deliver more readings of
that day late (the general temporal append, between the stored readings) and times the run
that finds and rebuilds it. ``--sql-fill`` writes all days but the last by SQL inside the
engine (``history_fill.py``: the rows the backfill would store, ~100,000 rows/s instead of
~50,000), which is how the full 90 days are loaded in minutes; the last day always goes
through the real write path, which creates the entities with their current values.

Device mix (one attribute each): 500 AirQualityObserved pm25, 1,000 TrafficFlowObserved
averageVehicleSpeed, 1,000 ParkingSpot status, 100 OffStreetParking availableSpotNumber,
1,500 Streetlight powerConsumption, 800 WasteContainer fillingLevel, 100 CashlessPayment
cashlessTransactions. (pm25 only: no pm10, so mean AQI is PM2.5's.)

* **backfill** — the real write path: ``storage.write`` of bulk history mutations
  (:func:`nakhon.temporal.bulk.append_in_order`, the path ``nakhon demo`` backfills with; one op
  per device and day, 288 instances; 50 ops per call), so entity state, history rows and their
  indexes are all written, with group commit. Timed: turning the readings into instances, the
  mutations, the history rows, every statement and commit. Not timed: simulating the readings
  (the raw baselines get their rows ready-made too). On PostgreSQL the next call is built while
  the previous one commits (``--pipeline auto``); on SQLite that only moves the GIL between two
  threads of one interpreter and is slower, so calls follow each other. ``--generic`` uses the
  general temporal provision (``provision.upsert``) instead, for comparison.
* **raw** — the engine inserting the very rows the backfill writes (same seven columns, same
  instance documents), prepared before the clock starts, 50,000 a transaction, into a *bare*
  table (no index, no generated column) and into a *same* table (a copy of ``attr_history``
  with its generated columns and indexes); ``executemany`` on both engines and binary COPY on
  PostgreSQL (``history_baselines.py``). Interleaved: each of the first ``--raw-days`` days
  (default 3) is inserted raw just before it is backfilled, and the ratios compare the same
  days, so both sides see the same background load. On SQLite, where all the work is in this
  process, the ratio of CPU times is printed too: it hardly moves with the machine's load.

    python bench/bench_kpi.py                       # SQLite, 5,000 devices, 3 days
    python bench/bench_kpi.py --engine postgres     # a throwaway database, dropped after
    python bench/bench_kpi.py --days 90 --sql-fill --raw-days 1 --progress
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from history_baselines import postgres_baselines, sqlite_baselines
from history_fill import postgres_fill, sqlite_fill

from nakhon.broker.jsonld import CORE_TERM_MAP
from nakhon.broker.model import Entity
from nakhon.broker.service import Broker
from nakhon.core.auth import Access
from nakhon.kpi.periods import day_start_utc
from nakhon.kpi.service import RecomputeResult, recompute_kpis
from nakhon.storage import storage_for
from nakhon.storage.base import Storage, WriteOp
from nakhon.temporal import provision
from nakhon.temporal.bulk import append_in_order

MIX = [
    ("AirQualityObserved", "pm25", 500),
    ("TrafficFlowObserved", "averageVehicleSpeed", 1000),
    ("ParkingSpot", "status", 1000),
    ("OffStreetParking", "availableSpotNumber", 100),
    ("Streetlight", "powerConsumption", 1500),
    ("WasteContainer", "fillingLevel", 800),
    ("CashlessPayment", "cashlessTransactions", 100),
]
STEP = timedelta(minutes=5)
PER_DAY = 288
OPS_PER_CALL = 50
TENANT = "bench"


def devices(scale: float) -> list[tuple[str, str, str]]:
    return [(f"urn:ngsi-ld:{t}:{i:05d}", t, a) for t, a, n in MIX for i in range(int(n * scale))]


def value(entity_type: str, k: int, rnd: random.Random) -> Any:
    h = (k // 12) % 24
    if entity_type == "ParkingSpot":
        return "occupied" if rnd.random() < 0.6 else "free"
    if entity_type == "Streetlight":
        return 100.0 if h >= 18 or h < 6 else 0.0
    if entity_type == "WasteContainer":
        return round((k % 288) / 288, 3)
    if entity_type == "OffStreetParking":
        return rnd.randint(0, 200)
    return round(rnd.uniform(5, 80), 1)


def day_instances(etype: str, day: date, rnd: random.Random) -> list[tuple[str, Any]]:
    start = day_start_utc(day)
    iso = "%Y-%m-%dT%H:%M:%SZ"
    return [((start + STEP * k).strftime(iso), value(etype, k, rnd)) for k in range(PER_DAY)]


GENERIC = False  # --generic: backfill through provision.upsert instead of the bulk append
PIPELINE = False  # --pipeline: build the next call's instances while the previous one commits

Readings = list[tuple[str, str, str, list[tuple[str, Any]]]]
"""(entity id, entity type, attribute, [(observedAt, value)]) per device: the simulated input."""


def readings(devs: list[tuple[str, str, str]], day: date) -> Readings:
    """The devices' readings of one day (the simulation: not part of the timed backfill)."""
    rnd = random.Random(day.toordinal())
    return [(eid, etype, attr, day_instances(etype, day, rnd)) for eid, etype, attr in devs]


def instances_of(etype: str, series: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    """Readings → NGSI-LD default instances, as an ingest mapping would make them."""
    insts = [{"type": "Property", "value": v, "observedAt": t} for t, v in series]
    if etype == "OffStreetParking":
        insts[-1]["totalSpotNumber"] = {"type": "Property", "value": 200}
    return insts


async def backfill(
    storage: Storage, devs: list[tuple[str, str, str]], day: date
) -> tuple[int, float, float]:
    """One day of every device through the real write path: (rows written, wall-clock
    seconds, CPU seconds of this process — the SQLite writer thread included).

    The seconds cover turning readings into instances, the mutations, the history rows and
    every SQL statement up to the last commit; simulating the readings is not timed (the
    raw baseline's rows are prepared before its clock starts too)."""
    data = readings(devs, day)
    t, c = time.perf_counter(), time.process_time()
    ops: list[WriteOp] = []
    rows = 0
    pending: asyncio.Task[None] | None = None
    for eid, etype, attr, series in data:
        iri = CORE_TERM_MAP.expand(attr)
        insts = instances_of(etype, series)
        types = [CORE_TERM_MAP.expand(etype)]
        mutation = (
            provision.upsert(Entity(eid, types), {iri: insts})
            if GENERIC
            else append_in_order(eid, types, {iri: insts})
        )
        ops.append(WriteOp(TENANT, eid, mutation))
        rows += len(insts)
        if len(ops) == OPS_PER_CALL:
            if pending is not None:
                await pending
            pending = asyncio.create_task(_write(storage, ops))
            if not PIPELINE:
                await pending
                pending = None
            ops = []
    if pending is not None:
        await pending
    if ops:
        await _write(storage, ops)
    return rows, time.perf_counter() - t, time.process_time() - c


async def late_readings(storage: Storage, devs: list[tuple[str, str, str]], day: date) -> None:
    """The devices deliver a second series of ``day`` late, between the stored readings —
    through the general temporal append (the bulk append only adds after the newest)."""
    rnd = random.Random(-day.toordinal())
    start = day_start_utc(day) + STEP / 2
    ops = []
    for eid, etype, attr in devs:
        series = [
            ((start + STEP * k).strftime("%Y-%m-%dT%H:%M:%SZ"), value(etype, k, rnd))
            for k in range(PER_DAY)
        ]
        types = [CORE_TERM_MAP.expand(etype)]
        insts = {CORE_TERM_MAP.expand(attr): instances_of(etype, series)}
        ops.append(WriteOp(TENANT, eid, provision.upsert(Entity(eid, types), insts)))
    await _write(storage, ops)


async def _write(storage: Storage, ops: list[WriteOp]) -> None:
    for r in await storage.write(ops):
        if isinstance(r, Exception):
            raise r


def raw_rows(devs: list[tuple[str, str, str]], day: date) -> list[tuple[Any, ...]]:
    """The rows the backfill of ``day`` writes to ``attr_history``, same documents."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    out = []
    for eid, etype, attr, series in readings(devs, day):
        iri = CORE_TERM_MAP.expand(attr)
        for inst in instances_of(etype, series):
            inst["createdAt"] = now
            inst["modifiedAt"] = now
            t = inst["observedAt"]
            out.append((TENANT, eid, iri, None, t, now, orjson.dumps(inst).decode()))
    return out


async def timed_recompute(
    broker: Broker, now: datetime, show: bool, name: str
) -> RecomputeResult:
    """``recompute_kpis`` with this process's CPU seconds added (``seconds["cpu"]``): on SQLite
    every read runs in this process, so that figure hardly moves with the machine's load."""
    cpu = time.process_time()
    result = await recompute_kpis(broker, TENANT, now)
    result.seconds["cpu"] = time.process_time() - cpu
    if show:
        wall, spent = result.seconds["total"], result.seconds["cpu"]
        print(f"{name} recompute: {wall:.2f} s (CPU {spent:.2f} s), {result.seconds}", flush=True)
    return result


async def _baselines(args: argparse.Namespace, url: str, rows: list[tuple[Any, ...]]) -> Raw:
    if args.engine == "postgres":
        return await postgres_baselines(args.dsn, rows)
    return sqlite_baselines(url.removeprefix("sqlite:///"), rows)


Raw = dict[str, tuple[float, float]]


async def run(args: argparse.Namespace) -> None:
    global GENERIC, PIPELINE, OPS_PER_CALL
    GENERIC = args.generic
    PIPELINE = args.pipeline == "on" or (args.pipeline == "auto" and args.engine == "postgres")
    OPS_PER_CALL = args.ops_per_call
    tmp = tempfile.mkdtemp(prefix="nakhon-bench-kpi-")
    url = args.dsn if args.engine == "postgres" else f"sqlite:///{Path(tmp) / 'nakhon.db'}"
    storage = storage_for(url)
    await storage.open()  # creates the schema
    devs = devices(args.scale)
    first = date(2024, 9, 1)
    rows_day = len(devs) * PER_DAY
    # Interleaved: each of the first --raw-days days is inserted raw (every baseline) just
    # before it is backfilled, so both see the same background load on this shared machine.
    raw: Raw = {}
    compared = [0, 0.0, 0.0]  # backfill rows, wall s, CPU s over the days measured raw
    rows, backfill_s, filled, start = 0, 0.0, 0, 0
    if args.sql_fill and args.days > 1:
        older = [first + timedelta(days=d) for d in range(args.days - 1)]
        if args.engine == "postgres":
            fill_s = await postgres_fill(args.dsn, TENANT, devs, older, args.progress)
        else:
            await storage.close()  # the fill needs the file to itself
            path = url.removeprefix("sqlite:///")
            fill_s = sqlite_fill(path, TENANT, devs, older, args.progress)
            storage = storage_for(url)
            await storage.open()
        filled, start = len(older) * rows_day, len(older)
        print(f"SQL fill: {filled:,} rows in {fill_s:.0f} s ({filled / fill_s:,.0f} rows/s)")
    broker = Broker(storage, Access(storage, enabled=False, anonymous_read=True), max_limit=1000)
    for d in range(start, args.days):
        day = first + timedelta(days=d)
        if d - start < args.raw_days:
            for name, (wall, cpu) in (await _baselines(args, url, raw_rows(devs, day))).items():
                w, c = raw.get(name, (0.0, 0.0))
                raw[name] = (w + wall, c + cpu)
        n, wall, cpu = await backfill(storage, devs, day)
        rows += n
        backfill_s += wall
        if d - start < args.raw_days:
            compared = [compared[0] + n, compared[1] + wall, compared[2] + cpu]
        if args.progress:
            rate = rows / backfill_s
            print(f"day {d + 1}/{args.days}: {rows:,} rows, {rate:,.0f} rows/s", flush=True)
    if args.engine == "postgres":
        conn = await asyncpg.connect(args.dsn)
        await conn.execute("VACUUM ANALYZE attr_history")
        await conn.close()
    last = first + timedelta(days=args.days - 1)
    now = day_start_utc(last + timedelta(days=1)) + timedelta(minutes=5)
    full = await timed_recompute(broker, now, args.progress, "full")
    new_day = last + timedelta(days=1)
    await backfill(storage, devs, new_day)
    inc = await timed_recompute(broker, now + timedelta(days=1), args.progress, "incremental")
    # Late data: 1 % of the devices deliver more readings of the new day (now the day before
    # the high-water mark), so the next run finds it (history_written_after) and rebuilds it.
    await late_readings(storage, devs[::100], new_day)
    late = await timed_recompute(broker, now + timedelta(days=1, minutes=15), False, "late")
    for i in range(args.repeat):  # more days, one incremental run after each
        await backfill(storage, devs, new_day + timedelta(days=i + 1))
        again = now + timedelta(days=i + 2)
        await timed_recompute(broker, again, True, f"incremental after day {args.days + i + 2}")
    await storage.close()
    total = filled + rows
    print(
        f"\n{args.engine}: {len(devs):,} devices × {args.days} days × {PER_DAY}/day = "
        f"{total:,} rows ({filled:,} by SQL fill; + {rows_day:,} new-day rows)"
    )
    if args.engine == "sqlite":
        size = sum(f.stat().st_size for f in Path(tmp).iterdir())
        print(f"SQLite file: {size / 1e9:.1f} GB ({size / (total + rows_day):.0f} bytes a row)")
    shutil.rmtree(tmp, ignore_errors=True)
    report(args, rows / backfill_s, raw, compared, (full, inc, late))


def report(
    args: argparse.Namespace,
    rate: float,
    raw: Raw,
    compared: list[float],
    runs: tuple[RecomputeResult, RecomputeResult, RecomputeResult],
) -> None:
    full, inc, late = runs
    n, wall, cpu = compared
    print("\n| measure | value | target |")
    print("| --- | --- | --- |")
    real = args.days - (args.days - 1 if args.sql_fill and args.days > 1 else 0)
    print(f"| backfill, real write path, {real} days | {rate:,.0f} rows/s | |")
    if raw:
        days = min(args.raw_days, real)
        print(f"| backfill, the {days} days also inserted raw | {n / wall:,.0f} rows/s | |")
    for name, (raw_wall, raw_cpu) in raw.items():
        cpu_ratio = f"; CPU time: {raw_cpu / cpu:.0%}" if args.engine == "sqlite" else ""
        print(
            f"| raw insert, {name} | {n / raw_wall:,.0f} rows/s | backfill = "
            f"**{raw_wall / wall:.0%}** of it{cpu_ratio} (≥ 40%) |"
        )
    def secs(res: RecomputeResult) -> str:
        return f"{res.seconds['total']:.2f} s (CPU of this process {res.seconds['cpu']:.2f} s)"

    print(f"| full recompute ({full.days_rebuilt} days) | {secs(full)} | |")
    print(
        f"| incremental recompute after one new day ({inc.days_rebuilt} days rebuilt) | "
        f"{secs(inc)} | < 5 s |"
    )
    print(
        f"| incremental recompute after late data from 1% of devices ({late.days_rebuilt} days"
        f" rebuilt) | {secs(late)} | |"
    )
    for name, res in (("incremental", inc), ("late data", late)):
        parts = ", ".join(
            f"{k} {v:.2f}" for k, v in res.seconds.items() if k not in ("total", "cpu")
        )
        print(f"\n{name}, seconds per step: {parts}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engine", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument(
        "--dsn",
        default=None,
        help="PostgreSQL database to use (default: a temporary database, dropped afterwards)",
    )
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument(
        "--pipeline",
        choices=["auto", "on", "off"],
        default="auto",
        help="build the next write while the previous one commits (auto: on PostgreSQL only;"
        " on SQLite the writer is a thread of this interpreter and only the GIL changes hands)",
    )
    parser.add_argument(
        "--ops-per-call", type=int, default=OPS_PER_CALL, help="devices per write (transaction)"
    )
    parser.add_argument(
        "--raw-days", type=int, default=3, help="days also inserted raw, interleaved (baselines)"
    )
    parser.add_argument(
        "--sql-fill",
        action="store_true",
        help="write all days but the last by SQL inside the engine (bench/history_fill.py)",
    )
    parser.add_argument(
        "--repeat", type=int, default=0, help="further days, each followed by a timed run"
    )
    parser.add_argument("--progress", action="store_true", help="print a line per day loaded")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of 5,000 devices")
    parser.add_argument(
        "--generic",
        action="store_true",
        help="backfill with the general temporal provision, not the bulk append",
    )
    asyncio.run(run_isolated(parser.parse_args()))


async def run_isolated(args: argparse.Namespace) -> None:
    """Never write into a real database by default: PostgreSQL runs get a throwaway one."""
    if args.engine == "postgres" and args.dsn is None:
        from nakhon.storage.postgres.testing import temporary_database

        async with temporary_database("nakhon_bench_kpi") as dsn:
            args.dsn = dsn
            await run(args)
    else:
        await run(args)


if __name__ == "__main__":
    main()
