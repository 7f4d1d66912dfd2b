"""CPU cost of the subscriptions write hook per change, in process (no database, no delivery).

Builds ``--changes`` attribute updates (as the writer hands them to ``OutboxHook.rows``) and
times the hook with no subscription, with ``--subs`` equal subscriptions on the entity type
(the bench_notifications case) and with ``--subs`` subscriptions that differ by ``q``. Use it to
measure changes to ``nakhon/subscriptions/matcher.py``; the write-rate ratio of
bench_notifications depends on it but is noisy on a shared machine.

    python bench/bench_matcher.py --subs 10 [--cpu]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nakhon.broker import ops
from nakhon.broker.jsonld import CORE_TERM_MAP
from nakhon.broker.model import NGSI_LD, Entity
from nakhon.storage.hooks import Change
from nakhon.subscriptions.matcher import Active, OutboxHook, Registry
from nakhon.subscriptions.model import parse_subscription

VOCAB = NGSI_LD + "default-context/"
NOW = "2026-11-01T00:00:00.000Z"


def _changes(n: int) -> list[Change]:
    out: list[Change] = []
    for i in range(n):
        base = Entity(f"urn:ngsi-ld:Sensor:{i}", [VOCAB + "Sensor"],
                      {VOCAB + "temperature": [{"type": "Property", "value": 1,
                                                "createdAt": NOW, "modifiedAt": NOW}]},
                      None, NOW, NOW)
        outcome = ops.update_attrs({VOCAB + "temperature": [{"type": "Property",
                                                             "value": i}]})(base, NOW)
        out.append(("t", base.id, outcome))
    return out


def _registry(n: int, distinct: bool) -> Registry:
    registry = Registry()
    entries = []
    for k in range(n):
        doc: dict[str, Any] = {
            "id": f"urn:ngsi-ld:Subscription:{k}", "type": "Subscription",
            "entities": [{"type": "Sensor"}],
            "notification": {"endpoint": {"uri": "http://127.0.0.1:9/notify"}}}
        if distinct:
            doc["q"] = f"temperature>={-k - 1}"
        sub = parse_subscription(doc, CORE_TERM_MAP, None, creating=True)
        entries.append(Active(k + 1, "t", sub, NOW, NOW))
    registry.replace(entries)
    return registry


def _time(registry: Registry, changes: list[Change], rounds: int, cpu: bool = False) -> float:
    hook = OutboxHook(registry, lambda pks: None)
    clock = time.process_time if cpu else time.perf_counter
    best = float("inf")
    for _ in range(rounds):
        t = clock()
        for lo in range(0, len(changes), 500):
            hook.rows(changes[lo:lo + 500], NOW)
        best = min(best, clock() - t)
    return best / len(changes) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--changes", type=int, default=20_000)
    ap.add_argument("--subs", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--cpu", action="store_true",
                    help="time the process's CPU (time.process_time) rather than the wall "
                         "clock: less sensitive to other work on a shared machine")
    args = ap.parse_args()
    changes = _changes(args.changes)
    none = _time(_registry(0, False), changes, args.rounds, args.cpu)
    same = _time(_registry(args.subs, False), changes, args.rounds, args.cpu)
    diff = _time(_registry(args.subs, True), changes, args.rounds, args.cpu)
    unit = "µs of CPU" if args.cpu else "µs"
    print(f"hook {unit} per change: no subscription {none:.2f}; {args.subs} equal subscriptions "
          f"{same:.2f}; {args.subs} subscriptions differing by q {diff:.2f}")


if __name__ == "__main__":
    main()
