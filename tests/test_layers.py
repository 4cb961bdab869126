"""The package's layers (docs/architecture.md), read from the source's own imports: the domain
imports no adapter or web/database library, and the gateway and the admin API do not import
each other: ``api/app.py`` assembles both, ``api/health.py`` reports on it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "meterline"


def imports(folder: str) -> dict[str, set[str]]:
    """Every module imported by each file under ``meterline/<folder>``."""
    found: dict[str, set[str]] = {}
    for path in sorted((PACKAGE / folder).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module)
        found[str(path.relative_to(PACKAGE))] = names
    return found


def offenders(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    return sorted(f"{path}: {name}" for path, names in imports(folder).items() for name in names
                  if any(name == f or name.startswith(f + ".") for f in forbidden))


def test_the_domain_is_pure_python() -> None:
    assert imports("domain"), "no domain modules found"
    assert offenders("domain", ("fastapi", "starlette", "sqlalchemy", "httpx", "aiohttp",
                                "psycopg", "meterline.store", "meterline.api",
                                "meterline.gateway", "meterline.services", "meterline.web",
                                "meterline.cli", "meterline.providers")) == []


@pytest.mark.parametrize(("folder", "forbidden"), [
    ("gateway", ("meterline.api", "meterline.web", "meterline.cli")),
    ("services", ("meterline.api", "meterline.web", "meterline.cli", "fastapi", "starlette")),
    ("store", ("meterline.api", "meterline.gateway", "meterline.services", "meterline.web",
               "meterline.cli", "fastapi", "starlette")),
    ("asgi", ("meterline.api", "meterline.gateway", "meterline.web", "meterline.cli")),
])
def test_adapters_do_not_reach_up(folder: str, forbidden: tuple[str, ...]) -> None:
    assert imports(folder), f"no modules under {folder}"
    assert offenders(folder, forbidden) == []


def test_the_api_uses_the_gateway_only_to_assemble_and_observe_it() -> None:
    knowing = [path for path, names in imports("api").items()
               if any(n == "meterline.gateway" or n.startswith("meterline.gateway.")
                      for n in names)]
    assert sorted(knowing) == ["api/app.py", "api/health.py", "api/state.py"]


# -- services: SQL lives in store/, results are typed ---------------------------------------------

#: Another engineer's module while bill sync is reworked; it still reads ``usage_daily`` itself.
#: Remove it from here once its query has moved to store/ (the list can only shrink).
SQL_IN_SERVICES_ALLOWED: frozenset[str] = frozenset()
#: What a service may take from SQLAlchemy: the types of what it is handed and opens
#: transactions on. Statements, columns and functions belong to store/.
SQLALCHEMY_NAMES: frozenset[str] = frozenset({"Engine", "Connection"})


def _sql_reaches(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names
                      if alias.name.split(".")[0] == "sqlalchemy"
                      or alias.name.startswith("meterline.store.schema")]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            if node.module == "meterline.store.schema" or (
                    node.module == "meterline.store" and
                    any(alias.name == "schema" for alias in node.names)):
                found.append(node.module)
            elif node.module == "sqlalchemy":
                found += [f"sqlalchemy.{alias.name}" for alias in node.names
                          if alias.name not in SQLALCHEMY_NAMES]
            elif node.module.startswith("sqlalchemy."):
                found.append(node.module)
    return found


def test_services_build_no_sql() -> None:
    """Services call store functions (and may open a transaction on an Engine or Connection);
    they import neither the tables (``meterline.store.schema``) nor SQLAlchemy's statements."""
    modules = sorted((PACKAGE / "services").rglob("*.py"))
    assert modules, "no services modules found"
    found = {str(path.relative_to(PACKAGE)): _sql_reaches(path) for path in modules}
    assert {path: names for path, names in found.items()
            if names and path not in SQL_IN_SERVICES_ALLOWED} == {}
    # An allowed module that no longer builds SQL must leave the list.
    assert [path for path in SQL_IN_SERVICES_ALLOWED if not found.get(path)] == []


#: Service functions that still answer ``dict[str, Any]`` (JSON-shaped) instead of a typed
#: result: none is left. The set stays empty, so that a new one fails the test.
UNTYPED_ALLOWED: frozenset[str] = frozenset()
#: Not results: a ledger row, handed to store.ledger as the columns it writes.
ROWS: frozenset[str] = frozenset({"metering.Pricing.columns"})


def _returns_json_dict(annotation: ast.expr | None) -> bool:
    """``dict[str, Any]``, alone or inside another type (a list of them, an optional one)."""
    if annotation is None:
        return False
    text = ast.unparse(annotation).replace(" ", "")
    return "dict[str,Any]" in text


def _untyped_results() -> set[str]:
    """Public functions of services modules, and public methods of their public classes,
    annotated as returning ``dict[str, Any]``. ``to_json`` methods are exempt: they are the
    one place each result type becomes JSON."""
    found = set()
    for path in sorted((PACKAGE / "services").glob("*.py")):
        module = path.stem
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("_") \
                    and _returns_json_dict(node.returns):
                found.add(f"{module}.{node.name}")
            elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                for item in node.body:
                    if isinstance(item, ast.FunctionDef) and not item.name.startswith("_") \
                            and item.name != "to_json" and _returns_json_dict(item.returns):
                        found.add(f"{module}.{node.name}.{item.name}")
    return found


def test_services_answer_typed_results() -> None:
    """API routes turn results into JSON (``to_json``); the CLI and the dashboard read their
    attributes, never string keys."""
    found = _untyped_results() - ROWS
    assert sorted(found - UNTYPED_ALLOWED) == []
    assert sorted(UNTYPED_ALLOWED - found) == [], "converted: remove them from UNTYPED_ALLOWED"
