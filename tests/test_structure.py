"""The layout holds: no import circles between files, serving code never loads the stand-in
or the tools, and a file's folder says what it may import.

Imports are read from the source with ``ast``: every ``import`` and ``from ... import`` at any
depth (module level, inside functions, under ``if TYPE_CHECKING:``) counts.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "fsacd"

#: folder -> the fsacd folders (and top-level modules) its files may import
ALLOWED: dict[str, set[str]] = {
    "core": {"core"},
    "config": {"config", "core"},
    "esl": {"esl"},
    "state": {"state", "core", "config"},
    "pop": {"pop", "state", "core", "config"},
    "verified": {"verified", "state", "core", "config", "esl"},
    "acd": {"acd", "state", "core", "config", "esl", "pop", "verified"},
    "web": {"web", "state", "core", "config"},
    "cli": {"cli", "acd", "state", "core", "config", "esl", "pop", "verified", "web"},
    "tools": {"tools", "acd", "state", "core", "config", "esl", "pop", "verified", "standin"},
    "standin": {"standin", "esl"},
}


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PKG.rglob("*.py")}


def imports_of(path: Path, name: str, known: set[str]) -> set[str]:
    """The fsacd modules ``path`` imports (a ``from pkg import sub`` counts as ``pkg.sub``)."""
    tree = ast.parse(path.read_text(), str(path))
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                out.add(a.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base if is_pkg else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            subs = {f"{mod}.{a.name}" for a in node.names} & known
            out |= subs
            if len(subs) < len(node.names):  # a name from the module itself, not a submodule
                out.add(mod)
    resolved = set()
    for m in out:
        while m and m not in known:
            m = m.rpartition(".")[0]
        if m and m != name and m.startswith("fsacd"):
            resolved.add(m)
    return resolved


def graph() -> dict[str, set[str]]:
    """Module -> the fsacd modules it imports (``from pkg import sub`` is an edge to ``sub``
    only; to the package itself only when a name of the package is taken)."""
    mods = modules()
    known = set(mods)
    return {name: imports_of(path, name, known) for name, path in mods.items()}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one file (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in g:
        if v not in index:
            visit(v)
    return out


def folder(mod: str) -> str:
    parts = mod.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and (PKG / parts[1]).is_dir()) else ""


def test_no_import_circles_between_files():
    found = cycles(graph())
    assert found == [], "import circles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_each_folder_imports_only_what_it_may():
    bad = []
    for mod, deps in graph().items():
        f = folder(mod)
        if f not in ALLOWED:
            continue
        for d in deps:
            df = folder(d)
            if df and df not in ALLOWED[f]:
                bad.append(f"{mod} -> {d}")
    assert bad == [], "imports across the layers:\n" + "\n".join(sorted(bad))


def loaded_after(code: str) -> list[str]:
    probe = f"{code}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_serving_code_never_loads_the_stand_in_or_the_tools():
    mods = loaded_after(
        "import fsacd.cli.main, fsacd.acd.controller\n"
        "from click.testing import CliRunner\n"
        "CliRunner().invoke(fsacd.cli.main.main, ['serve', '--help'])"
    )
    leaked = [m for m in mods if m.startswith(("fsacd.standin", "fsacd.tools"))]
    assert leaked == []


def test_the_entry_point_patches_gevent_before_anything_else():
    # ``serve`` with a config that does not exist: patched first, then a one-line error
    probe = (
        "import sys, warnings\n"
        "warnings.simplefilter('always')\n"
        "sys.argv = ['fsacd', '--config', '/nonexistent/fsacd.toml', 'serve']\n"
        "from fsacd.cli.entry import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "from gevent import monkey\n"
        "print('patched', monkey.is_module_patched('socket'), monkey.is_module_patched('ssl'))\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert "patched True True" in res.stdout
    assert "MonkeyPatchWarning" not in res.stderr
