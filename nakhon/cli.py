"""The ``nakhon`` command."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer

from nakhon import __version__
from nakhon.config import load_settings, settings_markdown

app = typer.Typer(
    help="Nakhon (นคร): the City Data Platform for Thai smart cities.",
    no_args_is_help=True,
    add_completion=False,
)
credentials = typer.Typer(help="Create, list and revoke API credentials.", no_args_is_help=True)
app.add_typer(credentials, name="credentials")

HostOpt = Annotated[str | None, typer.Option(help="Address to listen on [NAKHON_HOST].")]
PortOpt = Annotated[int | None, typer.Option(help="TCP port [NAKHON_PORT].")]
DataOpt = Annotated[
    Path | None, typer.Option("--data-dir", help="Data directory [NAKHON_DATA_DIR].")
]


@app.command()
def serve(host: HostOpt = None, port: PortOpt = None, data_dir: DataOpt = None) -> None:
    """Run the platform: the NGSI-LD API at /ngsi-ld/v1 and the admin API at /nakhon/v1."""
    import uvicorn

    from nakhon.app import create_app
    from nakhon.core.logs import configure_logging

    settings = load_settings(host=host, port=port, data_dir=data_dir)
    configure_logging(settings.log_level, settings.log_format)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        loop="uvloop",
        http="httptools",
    )


DbOpt = Annotated[str | None, typer.Option(
    help="sqlite:///file or postgresql://… [NAKHON_DATABASE_URL; empty: the data directory's "
         "nakhon.db].")]


@app.command()
def notify(data_dir: DataOpt = None, database_url: DbOpt = None) -> None:
    """Deliver subscription notifications from the outbox until SIGTERM/SIGINT: the delivering
    process for servers in NAKHON_NOTIFY_MODE=process/external (one per database at a time)."""
    import uvloop

    from nakhon.core.logs import configure_logging
    from nakhon.subscriptions.notifier import run_notifier

    settings = load_settings(data_dir=data_dir, database_url=database_url)
    configure_logging(settings.log_level, settings.log_format)
    uvloop.run(run_notifier(settings, echo=typer.echo))


@app.command()
def demo(
    host: HostOpt = None,
    port: PortOpt = None,
    data_dir: Annotated[Path | None, typer.Option(
        "--data-dir", help="Data directory [NAKHON_DATA_DIR, else ./nakhon-demo].")] = None,
    devices: Annotated[int, typer.Option(help="Simulated devices.", min=1)] = 500,
    seed: Annotated[int, typer.Option(help="Seed: same seed, same city.")] = 2567,
    days: Annotated[float, typer.Option(help="Days of history to backfill.", min=0)] = 30.0,
    province: Annotated[str, typer.Option(help="Province (name or DOPA code).")]
    = "Chachoengsao",
    speed: Annotated[float, typer.Option(
        help="Report this many times more often than real devices.", min=0.01)] = 1.0,
    history_step: Annotated[int, typer.Option(
        help="Minutes between backfilled readings.", min=1)] = 60,
) -> None:
    """Run the platform with a simulated Thai city feeding the real ingest path."""
    import os

    from nakhon.demo.run import run_demo

    if data_dir is None and not os.environ.get("NAKHON_DATA_DIR"):
        # Not ./nakhon-data: a demo must never write its made-up city into real data.
        data_dir = Path("./nakhon-demo")
    try:
        run_demo(
            load_settings(host=host, port=port, data_dir=data_dir),
            devices=devices, seed=seed, days=days, province=province, speed=speed,
            history_step=history_step * 60, echo=typer.echo,
        )
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from None


@app.command("settings")
def show_settings(
    markdown: Annotated[
        bool, typer.Option(help="Print the settings reference as Markdown.")
    ] = False,
) -> None:
    """Show every setting with its current value (or the reference with --markdown)."""
    if markdown:
        typer.echo(settings_markdown(), nl=False)
        return
    settings = load_settings()
    for name, value in sorted(settings.values.items()):
        typer.echo(f"NAKHON_{name.upper()}={value}")


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


def _with_access(fn: Any, data_dir: Path | None) -> Any:
    from nakhon.core.auth import Access
    from nakhon.storage import storage_for

    settings = load_settings(data_dir=data_dir)

    async def run() -> Any:
        storage = storage_for(settings.resolved_database_url)
        await storage.open()
        try:
            access = Access(storage, enabled=True, anonymous_read=settings.anonymous_read)
            return await fn(access)
        finally:
            await storage.close()

    return asyncio.run(run())


@credentials.command("create")
def credentials_create(
    name: Annotated[str, typer.Argument(help="Who or what the credential is for.")],
    role: Annotated[str, typer.Option(help="admin or writer.")] = "writer",
    tenant: Annotated[
        list[str] | None, typer.Option(help="Tenant it may write (repeat); none = all.")
    ] = None,
    data_dir: DataOpt = None,
) -> None:
    """Create a credential and print its token (shown only this once)."""
    from nakhon.core.auth import SYSTEM

    token = _with_access(
        lambda access: access.create_credential(SYSTEM, name, role, tenant or None), data_dir
    )
    typer.echo(token)


@credentials.command("list")
def credentials_list(data_dir: DataOpt = None) -> None:
    """List credentials (never their tokens)."""
    from nakhon.core.auth import SYSTEM

    for row in _with_access(lambda access: access.list_credentials(SYSTEM), data_dir):
        typer.echo(f"{row['id']}  {row['role']:6}  {row['name']}  tenants={row['tenants']}")


@credentials.command("revoke")
def credentials_revoke(
    credential_id: Annotated[str, typer.Argument(help="The id `credentials list` shows.")],
    data_dir: DataOpt = None,
) -> None:
    """Revoke a credential."""
    from nakhon.core.auth import SYSTEM

    ok = _with_access(lambda access: access.revoke_credential(SYSTEM, credential_id), data_dir)
    if not ok:
        raise typer.Exit(code=1)
    typer.echo("revoked")


# --- IoT device registry (nakhon devices …) ------------------------------------------------

devices = typer.Typer(help="IoT device registry: service groups and devices.",
                      no_args_is_help=True)
app.add_typer(devices, name="devices")
TenantOpt = Annotated[str, typer.Option(help="Tenant (NGSILD-Tenant); empty = default.")]


def _with_registry(fn: Any, data_dir: Path | None) -> Any:
    """Run ``fn(registry)`` on the configured storage, as the platform itself (SYSTEM)."""
    from nakhon.broker.service import Broker
    from nakhon.core.auth import Access
    from nakhon.core.errors import NgsiError
    from nakhon.iot.registry import Registry
    from nakhon.storage import storage_for

    settings = load_settings(data_dir=data_dir)

    async def run() -> Any:
        storage = storage_for(settings.resolved_database_url)
        await storage.open()
        try:
            access = Access(storage, enabled=True, anonymous_read=settings.anonymous_read)
            registry = Registry(storage, access, Broker(storage, access,
                                                        max_limit=settings.max_limit))
            await registry.load()
            return await fn(registry)
        finally:
            await storage.close()

    try:
        return asyncio.run(run())
    except NgsiError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(code=1) from None


@devices.command("group-create")
def devices_group_create(
    apikey: Annotated[str, typer.Argument(help="The API key devices put in their topics.")],
    entity_type: Annotated[str, typer.Option(help="Entity type of the group's devices.")],
    tenant: TenantOpt = "",
    resource: Annotated[str, typer.Option(help="HTTP ingest path.")] = "/iot/d",
    autoprovision: Annotated[bool, typer.Option(help="Accept unknown devices.")] = False,
    data_dir: DataOpt = None,
) -> None:
    """Create or update a service group."""
    from nakhon.core.auth import SYSTEM

    doc = {"apikey": apikey, "entity_type": entity_type, "resource": resource,
           "autoprovision": autoprovision}
    _with_registry(lambda r: r.create_group(SYSTEM, doc, tenant), data_dir)
    typer.echo(f"service group {apikey} ({tenant or 'default tenant'})")


@devices.command("group-list")
def devices_group_list(data_dir: DataOpt = None) -> None:
    """List service groups."""
    from nakhon.core.auth import SYSTEM

    for g in _with_registry(lambda r: r.list_groups(SYSTEM, None), data_dir):
        typer.echo(f"{g.apikey}  tenant={g.tenant!r}  type={g.entity_type}  {g.resource}")


@devices.command("group-delete")
def devices_group_delete(
    apikey: Annotated[str, typer.Argument(help="The group's API key.")], data_dir: DataOpt = None
) -> None:
    """Delete a service group (its devices stop being accepted)."""
    from nakhon.core.auth import SYSTEM

    _with_registry(lambda r: r.delete_group(SYSTEM, apikey), data_dir)
    typer.echo("deleted")


@devices.command("create")
def devices_create(
    device_id: Annotated[str, typer.Argument(help="The device id in its topics.")],
    apikey: Annotated[str, typer.Option(help="The device's service group.")],
    entity_id: Annotated[str | None, typer.Option(help="Entity id (default urn:ngsi-ld:T:id).")]
    = None,
    entity_type: Annotated[str | None, typer.Option(help="Default: the group's.")] = None,
    attr: Annotated[list[str] | None, typer.Option(
        help="Mapping object_id:name[:type[:unitCode]] (repeat).")] = None,
    static: Annotated[list[str] | None, typer.Option(help="Static name=value (repeat).")] = None,
    location: Annotated[str | None, typer.Option(help="'latitude,longitude'.")] = None,
    data_dir: DataOpt = None,
) -> None:
    """Provision a device and upsert its entity."""
    from nakhon.core.auth import SYSTEM

    doc: dict[str, Any] = {"device_id": device_id, "apikey": apikey, "location": location}
    if entity_id:
        doc["entity_name"] = entity_id
    if entity_type:
        doc["entity_type"] = entity_type
    mappings = []
    for spec in attr or []:
        parts = spec.split(":")
        mapping = {"object_id": parts[0], "name": parts[1] if len(parts) > 1 else parts[0]}
        if len(parts) > 2:
            mapping["type"] = parts[2]
        if len(parts) > 3:
            mapping["unitCode"] = parts[3]
        mappings.append(mapping)
    doc["attributes"] = mappings
    doc["static_attributes"] = [
        {"name": k, "value": v} for k, _, v in (s.partition("=") for s in static or [])]
    device = _with_registry(lambda r: r.create_device(SYSTEM, doc, ""), data_dir)
    typer.echo(f"device {device.device_id} → {device.entity_name}")


@devices.command("list")
def devices_list(tenant: TenantOpt = "", data_dir: DataOpt = None) -> None:
    """List a tenant's devices."""
    from nakhon.core.auth import SYSTEM

    found, count = _with_registry(
        lambda r: r.list_devices(SYSTEM, tenant, limit=10_000, offset=0), data_dir)
    for d in found:
        typer.echo(f"{d.device_id}  apikey={d.apikey}  {d.entity_name}")
    typer.echo(f"{count} device(s)")


@devices.command("delete")
def devices_delete(
    device_id: Annotated[str, typer.Argument(help="The device id.")],
    tenant: TenantOpt = "",
    data_dir: DataOpt = None,
) -> None:
    """Forget a device (its entity stays)."""
    from nakhon.core.auth import SYSTEM

    _with_registry(lambda r: r.delete_device(SYSTEM, tenant, device_id), data_dir)
    typer.echo("deleted")


@devices.command("dead-letters")
def devices_dead_letters(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's (default: all).")]
    = None,
    limit: Annotated[int, typer.Option(help="How many, newest first.", min=0)] = 20,
    offset: Annotated[int, typer.Option(help="Skip this many.", min=0)] = 0,
    data_dir: DataOpt = None,
) -> None:
    """List refused IoT messages (dead letters), newest first."""
    from nakhon.iot.stats import IngestStats
    from nakhon.storage import storage_for

    settings = load_settings(data_dir=data_dir)

    async def run() -> list[Any]:
        storage = storage_for(settings.resolved_database_url)
        await storage.open()
        try:
            stats = IngestStats(settings.iot_dead_letters_max, storage)
            scope = None if tenant is None else frozenset({tenant})
            return list(await stats.letters(scope, limit, offset))
        finally:
            await storage.close()

    letters = asyncio.run(run())
    for d in letters:
        typer.echo(f"{d.at}  {d.reason}  {d.transport}  tenant={d.tenant!r}  "
                   f"device={d.device_id}  apikey={d.apikey}  topic={d.topic}  {d.detail}")
    typer.echo(f"{len(letters)} dead letter(s)")


# --- temporal history (nakhon temporal …) ---------------------------------------------------

temporal = typer.Typer(help="Temporal history: retention.", no_args_is_help=True)
app.add_typer(temporal, name="temporal")


@temporal.command("prune")
def temporal_prune(data_dir: DataOpt = None) -> None:
    """Delete history older than NAKHON_TEMPORAL_RETENTION allows (run it from cron)."""
    from datetime import UTC, datetime

    from nakhon.core.auth import SYSTEM
    from nakhon.temporal.retention import parse_rules, prune

    rules = parse_rules(str(load_settings(data_dir=data_dir).temporal_retention))
    if not rules:
        typer.echo("no retention rules (NAKHON_TEMPORAL_RETENTION is empty): nothing to do")
        return
    from nakhon.core.auth import Access
    from nakhon.storage import storage_for

    settings = load_settings(data_dir=data_dir)

    async def run() -> int:
        storage: Any = storage_for(settings.resolved_database_url)
        await storage.open()
        try:
            access = Access(storage, enabled=True, anonymous_read=False)
            return await prune(storage, access, SYSTEM, rules, datetime.now(UTC))
        finally:
            await storage.close()

    typer.echo(f"deleted {asyncio.run(run())} attribute instances")


def main() -> None:
    """Entry point of the ``nakhon`` console script."""
    app()


if __name__ == "__main__":
    main()
