"""The README's package map is the truth: it names every module, and every import goes down it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "lincae_core"


def _map_rows() -> list[tuple[list[str], str]]:
    """The map's rows as (rooms, the text naming their modules)."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Package map") :]
    section = section[: section.index("\n## ", 3)]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not cells[0].startswith("`"):
            continue
        rooms = [n.removesuffix(".py").removesuffix("/") for n in re.findall(r"`([^`]+)`", cells[0])]
        rows.append((rooms, cells[1]))
    return rows


def _room(module: str) -> str:
    parts = module.split(".")
    return "__init__" if len(parts) == 1 else parts[1]


def _imports(path: Path) -> set[str]:
    """Every ``lincae_core`` module a file imports, at the top or inside a function."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lincae_core"):
            if node.module == "lincae_core":
                out |= {f"lincae_core.{a.name}" for a in node.names}
            else:
                out.add(node.module)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("lincae_core")}
    return out


def test_the_map_names_every_module() -> None:
    rows = _map_rows()
    rooms = [r for names, _ in rows for r in names]
    assert len(rooms) == len(set(rooms)), "a room is listed twice"
    top = {p.stem for p in PKG.glob("*.py") if p.stem != "__init__"} | {
        p.name for p in PKG.iterdir() if p.is_dir() and (p / "__init__.py").exists()
    }
    assert top == set(rooms)
    for names, text in rows:
        for room in names:
            if not (PKG / room).is_dir():
                continue
            named = set(re.findall(r"`([^`]+)`", text))
            for f in (PKG / room).rglob("*.py"):
                rel = f.relative_to(PKG / room).with_suffix("")
                if rel.name == "__init__":
                    continue
                assert rel.parts[0] in named or f"{rel.parts[0]}/" in named, (
                    f"{room}/{rel} missing from the map"
                )
                assert rel.name in named, f"{room}/{rel} missing from the map"


def test_every_import_goes_down_the_map() -> None:
    level = {room: i for i, (names, _) in enumerate(_map_rows()) for room in names}
    level["__init__"] = -1  # the package root re-exports lazily; nothing may import it
    climbs = []
    for f in PKG.rglob("*.py"):
        module = ".".join(f.relative_to(ROOT).with_suffix("").parts)
        src = _room(module)
        for target in _imports(f):
            dst = _room(target)
            if dst == "__init__" and src != "__init__":
                climbs.append(f"{module} imports the package root ({target})")
            elif dst != src and src != "__init__" and level[dst] > level[src]:
                climbs.append(f"{module} imports {target}, below it in the map")
    assert climbs == []
