"""Everything a user can set, run or call is documented: settings and CLI commands in the
README, REST routes in the OpenAPI schema with a summary. A new one without its line fails."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import typer.main

from heron.cli import app
from heron.config import Settings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def test_every_setting_has_a_row_in_the_settings_table() -> None:
    rows = set(re.findall(r"^\| `([a-z_]+)` \|", README, flags=re.MULTILINE))
    missing = [f.name for f in fields(Settings) if f.name not in rows]
    assert not missing, f"settings missing from README's settings table: {missing}"


def _commands(group: object, prefix: str = "") -> list[str]:
    found = []
    for name, command in getattr(group, "commands", {}).items():
        full = f"{prefix}{name}"
        if getattr(command, "commands", None):
            found += _commands(command, f"{full} ")
        else:
            found.append(full)
    return found


def test_every_cli_command_is_shown_in_the_readme() -> None:
    commands = _commands(typer.main.get_command(app))
    assert "search" in commands and "tag add" in commands
    missing = [c for c in commands if f"heron {c}" not in README]
    assert not missing, f"commands missing from README: {missing}"


def test_every_route_has_a_summary_in_the_openapi_schema(tmp_path: Path) -> None:
    from heron.interfaces.rest import create_app

    schema = create_app(data_dir=tmp_path / "data").openapi()
    bare = [
        f"{method.upper()} {path}"
        for path, methods in schema["paths"].items()
        for method, operation in methods.items()
        if not (operation.get("summary") and operation.get("description", "").strip())
    ]
    assert len(schema["paths"]) >= 10
    assert not bare, f"routes without a summary and description: {bare}"
