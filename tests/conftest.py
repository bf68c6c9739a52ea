from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import kubemeta
from apiemulator import ApiEmulator
from apiemulator.pki import Pki, make_pki

from harness import INSTALLED, REPO

TOKEN = "test-token-0123456789"


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    if shutil.which("openssl") is None:
        pytest.fail("the openssl command is required (Debian package openssl)")
    return make_pki(str(tmp_path_factory.mktemp("pki")))


@pytest.fixture
def emulator(pki: Pki) -> Iterator[ApiEmulator]:
    emu = ApiEmulator(pki).start()
    emu.add_token(TOKEN, "system:serviceaccount:kube-system:kubemeta")
    yield emu
    emu.close()


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    p = tmp_path / "token"
    p.write_text(TOKEN + "\n")
    return p


def pytest_configure(config: pytest.Config) -> None:
    # Testing the package means importing it from where dpkg put it, not the checkout.
    if INSTALLED and not kubemeta.__file__.startswith("/usr/lib/python3/dist-packages/"):
        raise pytest.UsageError(f"KUBEMETA_INSTALLED=1 but kubemeta comes from "
                                f"{kubemeta.__file__}; run pytest from outside the checkout "
                                f"with /usr/bin/python3")
    # And testing the checkout means its code, not a package installed on the machine
    # (which the venv, built on the system's site-packages, would otherwise find first).
    if not INSTALLED and not Path(kubemeta.__file__).resolve().is_relative_to(REPO):
        raise pytest.UsageError(f"kubemeta comes from {kubemeta.__file__}, not from the "
                                f"checkout {REPO}: is the Debian package installed? "
                                f"Remove it (apt-get purge kubemeta) to test the checkout")


# Test modules that run the installed command, snippets, example or man page.
USES_INSTALLED_FILES = {"test_config.py", "test_installed.py", "test_kubelet.py",
                        "test_puppet.py", "test_kubeapi.py"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "e2e" in item.nodeid:
            item.add_marker(pytest.mark.e2e)
    if os.environ.get("KUBEMETA_SKIP_UNIT") == "1":
        # An installed-package run on a platform whose pure unit tests already ran
        # (same Python, same libraries) runs only what tests the installed files.
        keep = [i for i in items if "e2e" in i.nodeid or i.path.name in USES_INSTALLED_FILES]
        config.hook.pytest_deselected(items=[i for i in items if i not in keep])
        items[:] = keep
