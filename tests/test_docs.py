"""Documentation cannot drift: generated docs match the code, every command is described."""

from __future__ import annotations

from pathlib import Path

from typer.main import get_command

from nakhon.cli import app
from nakhon.config import settings_markdown

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_settings_doc_is_generated_from_declarations() -> None:
    assert (DOCS / "settings.md").read_text() == settings_markdown(), (
        "docs/settings.md is stale: run `nakhon settings --markdown > docs/settings.md`"
    )


def test_every_command_is_documented() -> None:
    text = (DOCS / "cli.md").read_text()
    group = get_command(app)
    names: list[str] = []
    for name, cmd in group.commands.items():  # type: ignore[attr-defined]
        sub = getattr(cmd, "commands", None)
        names += [f"{name} {s}" for s in sub] if sub else [name]
    missing = [n for n in names if f"nakhon {n}" not in text]
    assert not missing, f"commands missing from docs/cli.md: {missing}"
