"""The package's layers, read from the source: each module imports only from
its own layer or the ones below; one module owns the ``kubernetes`` client; the
sans-IO layers import nothing that does I/O; nothing installed imports a
development package. README: Layout draws the same layers."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from harness import REPO

PACKAGE = REPO / "kubemeta"
# Bottom to top. A folder stands for every module in it.
LAYERS: list[tuple[str, ...]] = [
    ("__init__", "errors", "jsonlib", "internal", "files", "clock", "kinds", "text"),
    ("wire",),
    ("model",),
    ("cache",),
    ("kube",),
    ("state",),
    ("share",),
    ("shell",),
    # The composition root and what reads a Config: no part below sees one.
    ("confighelp", "config", "configfile", "app", "roles", "serve", "checks", "statuscmd",
     "replay",
     "cli", "__main__"),
]
# Bytes and values in, values out: no sockets, threads, clocks, files or logs.
SANS_IO = ("wire", "model", "cache/policy", "cache/scheduler", "cache/rules", "errors",
           "jsonlib", "kinds")
IO_MODULES = {"socket", "ssl", "select", "selectors", "threading", "subprocess", "time",
              "urllib3", "http", "mmap", "fcntl", "tempfile", "logging", "kubernetes",
              "signal", "shutil", "asyncio", "multiprocessing", "queue", "systemd"}


def imports(path: Path) -> set[str]:
    """The modules ``path`` imports, wherever in the file, as dotted names
    (``from kubemeta.wire import framing`` gives kubemeta.wire.framing)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module)
            if node.module.startswith("kubemeta"):
                out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def modules() -> dict[str, set[str]]:
    """Each module of the package ("wire/framing", "cli") and what it imports."""
    return {p.relative_to(PACKAGE).with_suffix("").as_posix().removesuffix("/__init__"): imports(p)
            for p in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> int | None:
    """``module`` a path ("wire/framing") or a dotted name (kubemeta.wire.framing)."""
    parts = module.removeprefix("kubemeta").strip(".").replace(".", "/").split("/")
    for i, names in enumerate(LAYERS):
        if parts[0] in names:
            return i
    return None


def test_every_module_has_a_layer() -> None:
    assert {m: layer_of(m) for m in modules() if layer_of(m) is None} == {}


def test_layers_import_only_downward() -> None:
    upward = {}
    for module, names in modules().items():
        mine = layer_of(module)
        assert mine is not None
        above = sorted(n for n in names if n.startswith("kubemeta.")
                       and (layer_of(n) or 0) > mine)
        if above:
            upward[module] = above
    assert upward == {}


def test_only_kubeapi_imports_the_kubernetes_client() -> None:
    users = sorted(m for m, names in modules().items()
                   if any(n == "kubernetes" or n.startswith("kubernetes.") for n in names))
    assert users == ["kube/kubeapi"]


@pytest.mark.parametrize("where", SANS_IO)
def test_sans_io_modules_import_no_io(where: str) -> None:
    bad = {m: sorted(n for n in names if n.split(".")[0] in IO_MODULES)
           for m, names in modules().items() if m == where or m.startswith(where + "/")}
    assert bad, f"no module at {where}"
    assert {m: b for m, b in bad.items() if b} == {}


def test_nothing_installed_imports_a_development_package() -> None:
    bad = {m: sorted(n for n in names if n.split(".")[0] in ("apiemulator", "harness", "fakes"))
           for m, names in modules().items()}
    assert {m: b for m, b in bad.items() if b} == {}


MAX_LINES = 420  # "about 400": a module that outgrows it has two jobs


def test_no_module_has_grown_past_about_400_lines() -> None:
    long = {}
    for folder in ("kubemeta", "devel", "bench", "scripts"):
        for path in sorted((REPO / folder).rglob("*.py")):
            n = len(path.read_text().splitlines())
            if n > MAX_LINES:
                long[str(path.relative_to(REPO))] = n
    assert long == {}
