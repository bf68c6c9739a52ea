"""The package's import contract, read from the source: one module owns the
``kubernetes`` client, the sans-IO modules import nothing that does I/O, and
nothing installed imports the development packages."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from harness import REPO

PACKAGE = REPO / "kubemeta"
# Bytes and values in, values out: no sockets, threads, clocks, files or logs.
SANS_IO = ("errors", "framing", "record", "watchproto", "listproto", "omprog", "identify",
           "schema", "logline", "replyparts", "policy", "scheduler", "jsonlib", "sharedproto",
           "sharedview")
IO_MODULES = {"socket", "ssl", "select", "selectors", "threading", "subprocess", "time",
              "urllib3", "http", "mmap", "fcntl", "tempfile", "logging", "kubernetes",
              "signal", "shutil", "asyncio", "multiprocessing", "queue", "systemd"}


def imports(path: Path) -> set[str]:
    """The top-level names of every module ``path`` imports, wherever in the file."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module)
    return out


def modules() -> dict[str, set[str]]:
    return {p.relative_to(PACKAGE).with_suffix("").as_posix(): imports(p)
            for p in sorted(PACKAGE.rglob("*.py"))}


def test_the_package_is_where_the_contract_looks() -> None:
    found = modules()
    assert "kubeapi" in found and all(m in found for m in SANS_IO)


def test_only_kubeapi_imports_the_kubernetes_client() -> None:
    users = sorted(m for m, names in modules().items()
                   if any(n == "kubernetes" or n.startswith("kubernetes.") for n in names))
    assert users == ["kubeapi"]


@pytest.mark.parametrize("module", SANS_IO)
def test_sans_io_modules_import_no_io(module: str) -> None:
    names = modules()[module]
    bad = sorted(n for n in names if n.split(".")[0] in IO_MODULES)
    assert bad == [], f"kubemeta/{module}.py imports {bad}"


def test_nothing_installed_imports_a_development_package() -> None:
    bad = {m: sorted(n for n in names if n.split(".")[0] in ("apiemulator", "harness", "fakes"))
           for m, names in modules().items()}
    assert {m: b for m, b in bad.items() if b} == {}
