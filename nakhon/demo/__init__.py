"""The demo city: a simulated Thai city that feeds the real ingest path (``nakhon demo``).

``geo`` (real DOPA codes and names, approximate positions) → ``kinds`` and ``samplers`` (what
each device measures, as pure functions of time) → ``fleet`` (the planned devices and their
registry documents) → ``city`` (provision through the device registry, ``backfill`` history in
bulk, then ``live`` reporting through the IoT ingestor and batcher) → ``run`` (the command).
"""
