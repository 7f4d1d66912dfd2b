"""`nakhon demo` on the command line: options, the banner, clear errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from nakhon import cli
from nakhon.config import load_settings
from nakhon.demo.city import DemoOptions
from nakhon.demo.run import banner


def test_unknown_province_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli.app, ["demo", "--province", "Atlantis", "--data-dir", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "No demo data for province 'Atlantis'" in result.output
    assert not (tmp_path / "nakhon.db").exists()  # nothing started


def test_options_reach_the_demo(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    def fake_run(settings: Any, **kwargs: Any) -> None:
        seen.update(kwargs, data_dir=settings.data_dir, port=settings.port)

    monkeypatch.setattr("nakhon.demo.run.run_demo", fake_run)
    monkeypatch.delenv("NAKHON_DATA_DIR", raising=False)
    args = ["demo", "--devices", "40", "--seed", "9", "--days", "2", "--speed", "5"]
    result = CliRunner().invoke(cli.app, [*args, "--history-step", "15", "--port", "8123"])
    assert result.exit_code == 0, result.output
    assert seen["devices"] == 40 and seen["seed"] == 9 and seen["days"] == 2.0
    assert seen["speed"] == 5.0 and seen["history_step"] == 900 and seen["port"] == 8123
    assert Path(seen["data_dir"]) == Path("nakhon-demo")  # never ./nakhon-data by default


def test_banner_says_where_the_token_is(tmp_path: Path) -> None:
    settings = load_settings(env={}, data_dir=tmp_path, host="0.0.0.0", port=8001)
    text = banner(settings, DemoOptions(devices=12), "ฉะเชิงเทรา")
    assert "http://127.0.0.1:8001/ngsi-ld/v1/entities" in text
    assert f"cat {tmp_path / 'admin-token'}" in text
    assert "12 devices" in text
