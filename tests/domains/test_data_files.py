"""The data copied into the package still says what the shared originals say."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import pytest


def packaged(name: str) -> Any:
    return json.loads(resources.files("nakhon.domains").joinpath("data", name).read_text("utf-8"))


def test_aqi_table_matches_the_shared_yaml(shared_dir: Path) -> None:
    yaml = pytest.importorskip("yaml")
    source = shared_dir / "data" / "thai-aqi.yaml"
    if not source.exists():
        pytest.skip("shared data not present")
    original = yaml.safe_load(source.read_text())
    ours = packaged("thai-aqi.json")
    for key in ("bands", "breakpoints", "before_2023_06_01"):
        assert ours[key] == original[key], key


def test_domain_names_match_the_programme_facts(shared_dir: Path) -> None:
    yaml = pytest.importorskip("yaml")
    source = shared_dir / "data" / "programme" / "seed-facts.yaml"
    if not source.exists():
        pytest.skip("shared data not present")
    facts = yaml.safe_load(source.read_text())["domains"]
    ours = packaged("domains.json")["domains"]
    assert [(d["key"], d["th"], d["en"]) for d in facts] == [
        (d["id"], d["name"]["th"], d["name"]["en"]) for d in ours
    ]


def test_licence_notes_ship_with_the_data() -> None:
    # The JSON files carry their own source notes (package data ships *.json, not README.md).
    assert "CC-BY-4.0" in packaged("domains.json")["_source"]
    assert "Pollution Control Department" in packaged("thai-aqi.json")["_source"]
    readme = Path(__file__).resolve().parents[2] / "nakhon" / "domains" / "data" / "README.md"
    assert "CC-BY-4.0" in readme.read_text()
