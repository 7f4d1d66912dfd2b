"""``nakhon demo``: the platform (as ``nakhon serve`` runs it) plus the demo city, one process."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from nakhon.config import Settings
from nakhon.demo.city import DemoOptions, attach
from nakhon.demo.geo import load_province


def banner(settings: Settings, options: DemoOptions, province_th: str) -> str:
    """What the operator needs to know before the logs start scrolling."""
    shown = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    url = f"http://{shown}:{settings.port}"
    token = Path(settings.data_dir) / "admin-token"
    lines = [
        f"Nakhon demo city · เมืองจำลอง: {options.province} ({province_th}), "
        f"{options.devices} devices, {options.days:g} days of history, seed {options.seed}",
        f"  NGSI-LD API   {url}/ngsi-ld/v1/entities?type=AirQualityObserved",
        f"  Domains       {url}/nakhon/v1/domains",
        f"  IoT devices   {url}/nakhon/v1/iot/devices   (needs the admin token)",
        f"  Data          {Path(settings.data_dir).resolve()}",
    ]
    if settings.auth_enabled:
        lines.append(f"  Admin token   cat {token}   → header 'Authorization: Bearer <token>'")
    lines.append(
        "The API answers at once; history is backfilled in the background "
        "(progress in the log), then the devices report live. Ctrl-C stops."
    )
    return "\n".join(lines)


def run_demo(
    settings: Settings,
    *,
    devices: int,
    seed: int,
    days: float,
    province: str,
    speed: float,
    history_step: int,
    echo: Callable[[str], object] = print,
) -> None:
    """Start uvicorn on the demo app; returns when the server stops. ValueError for an
    unknown province."""
    import uvicorn

    from nakhon.app import create_app
    from nakhon.core.logs import configure_logging

    place = load_province(province)  # fail before anything starts
    options = DemoOptions(
        province=place.name_en,
        devices=devices,
        seed=seed,
        days=days,
        speed=speed,
        history_step=history_step,
    )
    configure_logging(settings.log_level, settings.log_format)
    app = create_app(settings)
    attach(app, options)
    echo(banner(settings, options, place.name_th))
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        loop="uvloop",
        http="httptools",
    )
