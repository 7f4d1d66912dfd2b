"""Every setting Nakhon reads, declared once: name, type, default and description.

Settings come from environment variables named ``NAKHON_<NAME>``. ``docs/settings.md`` is
generated from :data:`SETTINGS` (``nakhon settings --markdown``) and a test fails when the two
drift apart, so a setting cannot exist without documentation.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Setting:
    """One declared setting."""

    name: str
    type: type
    default: Any
    description: str

    @property
    def env(self) -> str:
        return f"NAKHON_{self.name.upper()}"


SETTINGS: tuple[Setting, ...] = (
    Setting("data_dir", Path, Path("./nakhon-data"),
            "Directory for the embedded SQLite database and other local state."),
    Setting("database_url", str, "",
            "Storage engine. Empty: SQLite file `nakhon.db` in the data directory. "
            "`sqlite:///path/to/file.db` or `postgresql://user@host:port/db` (PostGIS needed)."),
    Setting("host", str, "127.0.0.1", "Address `nakhon serve` listens on."),
    Setting("port", int, 8000, "TCP port `nakhon serve` listens on."),
    Setting("auth", str, "on",
            "`on`: writes need a credential (Bearer token or `X-API-Key`). `off`: no "
            "authentication at all, for closed networks and conformance testing; the server "
            "warns loudly at start."),
    Setting("anonymous_read", bool, True,
            "Default for tenants without their own setting: may anonymous clients read?"),
    Setting("max_limit", int, 1000,
            "Largest `limit` a query may ask for; above it the answer is TooManyResults."),
    Setting("default_limit", int, 20, "Page size when a query gives no `limit`."),
    Setting("max_body_bytes", int, 1_048_576,
            "Largest request body accepted; larger bodies get 413 with ProblemDetails."),
    Setting("context_fetch_timeout", float, 5.0,
            "Seconds to wait for a remote @context before LdContextNotAvailable."),
    Setting("context_max_bytes", int, 1_048_576, "Largest remote @context accepted, in bytes."),
    Setting("context_fetch_private", bool, False,
            "Fetch remote @contexts from loopback, private and link-local addresses too. Off: "
            "only public addresses are reached (a client's @context cannot make the broker "
            "probe its own network); turn on for a context server inside a closed network."),
    Setting("context_cache_ttl", float, 3600.0,
            "Seconds a fetched remote @context is kept before it is fetched again."),
    Setting("notification_max_delay", float, 2.0,
            "While writes queue, notification delivery yields to them (about 200/s in all), "
            "but a change that has waited this many seconds is notified at full speed: the "
            "lag stays bounded under sustained load."),
    Setting("notification_max_entities", int, 100,
            "Most entities in one notification. Changes already waiting for a subscription "
            "(a backlog, or a burst of writes) go out together, in order, in one notification "
            "of up to this many entities (and about 1 MB); an idle system still sends each "
            "change at once. 1: one entity per notification."),
    Setting("notify_mode", str, "inline",
            "Where notifications are delivered. `inline`: in the serving process (one "
            "process does everything). `process`: `nakhon serve` only writes the outbox and "
            "starts `nakhon notify` as a child process (restarted if it dies, stopped with "
            "the server), which delivers on the other core — for high write rates. "
            "`external`: the server only writes the outbox; run `nakhon notify` yourself "
            "(e.g. under systemd). Exactly one process per database delivers at a time."),
    Setting("notify_poll_interval", float, 0.025,
            "Seconds between the delivering process's checks for new outbox rows "
            "(`process`/`external` modes): the latency it adds to a notification."),
    Setting("notify_nice", int, 10,
            "CPU priority that `nakhon notify` gives itself (added to its niceness, 0-19): "
            "when the machine's CPU is short, the serving process's writes go first and "
            "delivery takes what is left (it lags, and catches up when the load drops); on an "
            "idle machine it changes nothing. 0: same priority as the server."),
    Setting("write_batch_max", int, 512,
            "Most write operations the writer commits in one transaction (group commit)."),
    Setting("mqtt_url", str, "",
            "MQTT broker for IoT ingest, e.g. `mqtt://127.0.0.1:1883` "
            "(`mqtt://user:password@host:port`). Empty: no MQTT; HTTP ingest still works."),
    Setting("mqtt_client_id", str, "nakhon-ingest",
            "MQTT client id of the ingest session. Keep it stable: the broker keeps the "
            "persistent session (and queues QoS 1 messages) under this id while Nakhon is down."),
    Setting("mqtt_ack_after_commit", bool, True,
            "Acknowledge MQTT messages only after their measurements are committed (no loss on "
            "a crash). `false` acks on receipt: faster, but a crash loses what was in flight."),
    Setting("mqtt_reconnect_max", float, 30.0,
            "Longest wait, in seconds, between MQTT reconnect attempts (exponential backoff)."),
    Setting("iot_batch_max", int, 2000,
            "Most IoT measurements written in one storage transaction."),
    Setting("iot_batch_wait_ms", float, 5.0,
            "Milliseconds a lightly loaded ingest batch waits for more measurements to join."),
    Setting("iot_dead_letters_max", int, 1000,
            "Refused IoT messages kept for `GET /nakhon/v1/iot/deadLetters` (oldest dropped)."),
    Setting("temporal_instance_limit", int, 1000,
            "Most instances (or aggregation buckets) per attribute in one temporal answer; "
            "beyond it the answer is 206 Partial Content with a `Content-Range` to continue "
            "from, and `lastN` up to this value is answered whole."),
    Setting("temporal_retention", str, "",
            "How long attribute history is kept: a default ISO 8601 duration and rules, "
            "separated by `;`, e.g. `P2Y; tenant:bangkok=P1Y; type:AirQualityObserved=P90D; "
            "attr:pm25=P30D`. Empty: keep forever. Applied every "
            "NAKHON_TEMPORAL_PRUNE_INTERVAL seconds by the running platform and by "
            "`nakhon temporal prune` (see docs/temporal.md)."),
    Setting("temporal_prune_interval", float, 3600.0,
            "Seconds between retention sweeps inside the running platform (when "
            "NAKHON_TEMPORAL_RETENTION has rules); 0 disables them (prune with the CLI instead)."),
    Setting("kpi_interval", float, 15.0,
            "Minutes between KPI recomputations (every known tenant, incremental from the "
            "last run). 0: no periodic task; use `POST /nakhon/v1/kpis/recompute`."),
    Setting("kpi_late_days", int, 1,
            "Days before the last KPI run that each run rebuilds, so readings arriving up to "
            "that late still count (older late data needs `?full=true`)."),
    Setting("kpi_tenants", str, "",
            "Comma-separated tenants the KPI task computes besides the default tenant and "
            "those computed before."),
    Setting("log_level", str, "info", "Log level: debug, info, warning or error."),
    Setting("log_format", str, "console", "`console` for people, `json` for log collectors."),
)

_BY_NAME = {s.name: s for s in SETTINGS}


def _coerce(setting: Setting, raw: str) -> Any:
    if setting.type is bool:
        low = raw.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{setting.env}: expected true/false, got {raw!r}")
    try:
        return setting.type(raw)
    except ValueError as exc:
        raise ValueError(f"{setting.env}: expected {setting.type.__name__}, got {raw!r}") from exc


@dataclass(frozen=True)
class Settings:
    """Resolved settings; build with :func:`load_settings`."""

    values: Mapping[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    def replace(self, **changes: Any) -> Settings:
        unknown = set(changes) - set(_BY_NAME)
        if unknown:
            raise KeyError(f"unknown settings: {sorted(unknown)}")
        return Settings({**self.values, **changes})

    @property
    def auth_enabled(self) -> bool:
        return str(self.values["auth"]).lower() not in ("off", "0", "false", "no")

    @property
    def resolved_database_url(self) -> str:
        url = str(self.values["database_url"])
        if url:
            return url
        return f"sqlite:///{Path(self.values['data_dir']) / 'nakhon.db'}"


def load_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Read settings from ``env`` (default: the process environment), then apply overrides."""
    source = os.environ if env is None else env
    values: dict[str, Any] = {}
    for s in SETTINGS:
        raw = source.get(s.env)
        values[s.name] = s.default if raw is None or raw == "" else _coerce(s, raw)
    for key, value in overrides.items():
        if key not in _BY_NAME:
            raise KeyError(f"unknown setting {key}")
        if value is not None:
            values[key] = value
    if str(values["auth"]).lower() not in ("on", "off"):
        raise ValueError("NAKHON_AUTH must be 'on' or 'off'")
    if str(values["notify_mode"]) not in ("inline", "process", "external"):
        raise ValueError("NAKHON_NOTIFY_MODE must be 'inline', 'process' or 'external'")
    return Settings(values)


def settings_markdown() -> str:
    """The settings reference, as Markdown (the content of docs/settings.md)."""
    lines = [
        "# Settings",
        "",
        "Generated from `nakhon/config.py` by `nakhon settings --markdown`; do not edit by hand.",
        "",
        "| Environment variable | Type | Default | Description |",
        "| --- | --- | --- | --- |",
    ]
    for s in SETTINGS:
        default = "(empty)" if s.default == "" else f"`{s.default}`"
        lines.append(f"| `{s.env}` | {s.type.__name__} | {default} | {s.description} |")
    return "\n".join(lines) + "\n"
