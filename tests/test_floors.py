"""The house's floors, checked against the code: `deja/` is a library that imports no service or tool,
`services/` is the runtime and imports no tool, `tools/` may import both. ARCHITECTURE.md names the
rooms; every path it names exists.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FLOORS = {"deja": 0, "services": 1, "tools": 2}  # a floor imports only floors at or below its own


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) for every import in a file, those inside functions included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def sources(floor: str) -> list[Path]:
    return sorted(p for p in (REPO / floor).rglob("*.py") if "v1" not in p.relative_to(REPO).parts[:2])


def imports_up(floor: str) -> list[str]:
    """'file:line imports module' for each import of a higher floor from this one."""
    up = []
    for path in sources(floor):
        for line, module in imported_modules(path):
            target = module.split(".")[0]
            if FLOORS.get(target, -1) > FLOORS[floor]:
                up.append(f"{path.relative_to(REPO)}:{line} imports {module}")
    return up


@pytest.mark.parametrize("floor", list(FLOORS))
def test_no_import_runs_back_up_a_floor(floor):
    assert imports_up(floor) == []


def test_the_check_sees_an_import_that_runs_up(tmp_path):
    leaky = tmp_path / "leaky.py"
    leaky.write_text("def f():\n    from tools.cluster import Cluster\n    import services.gateway.app\n")
    assert imported_modules(leaky) == [(2, "tools.cluster"), (3, "services.gateway.app")]


def test_services_do_not_reach_into_each_other():
    """A service talks to another over gRPC (through deja.clients), never by importing its modules."""
    crossings = []
    for path in sources("services"):
        parts = path.relative_to(REPO).parts
        if len(parts) < 3:  # services/__main__.py, services/launcher.py: the launcher names every service
            continue
        own = parts[1]
        for line, module in imported_modules(path):
            bits = module.split(".")
            if bits[0] == "services" and len(bits) > 1 and bits[1] != own:
                crossings.append(f"{path.relative_to(REPO)}:{line} imports {module}")
    assert crossings == []


def test_architecture_md_names_only_paths_that_exist():
    text = (REPO / "ARCHITECTURE.md").read_text()
    named = set(re.findall(r"`((?:deja|services|tools|tests|deploy|protos)/[A-Za-z0-9_./-]*)`", text))
    assert len(named) >= 20, "ARCHITECTURE.md should name the rooms"
    missing = sorted(p for p in named if not (REPO / p.rstrip("/")).exists())
    assert missing == []


def test_architecture_md_lists_every_room_of_the_gateway_and_the_floors():
    text = (REPO / "ARCHITECTURE.md").read_text()
    for floor in FLOORS:
        assert f"`{floor}/`" in text
    rooms = [p for p in (REPO / "services").iterdir() if p.is_dir() and (p / "__init__.py").exists()]
    for room in rooms:
        assert f"`services/{room.name}/`" in text, f"ARCHITECTURE.md does not place services/{room.name}/"
