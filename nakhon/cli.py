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


def main() -> None:
    """Entry point of the ``nakhon`` console script."""
    app()


if __name__ == "__main__":
    main()
