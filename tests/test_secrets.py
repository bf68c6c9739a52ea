"""No secret in a message: config errors, token files, kubemeta's log, check."""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from apiemulator import ApiEmulator
from kubemeta import config, configfile, text
from kubemeta.app import App
from kubemeta.errors import ApiUnauthorized, ConfigError
from kubemeta.kube.credentials import TokenFile
from kubemeta.shell import logsink

from harness import KUBEMETA_BIN

SECRET = "eyJhbGciOiJSUzI1NiIsImtpZCI6InNlY3JldCJ9"


@pytest.fixture
def own_log() -> Iterator[None]:
    """logsink.setup configures the process's "kubemeta" logger: put it back as
    it was, or later tests' log captures would hear nothing."""
    loggers = [logging.getLogger(n) for n in ("kubemeta", "py.warnings", "urllib3", "kubernetes")]
    saved = [(list(lg.handlers), lg.propagate, lg.level) for lg in loggers]
    try:
        yield
    finally:
        for lg, (handlers, propagate, level) in zip(loggers, saved, strict=True):
            for h in lg.handlers:
                if h not in handlers:
                    h.close()
            lg.handlers[:] = handlers
            lg.propagate, lg.level = propagate, level
        logging.captureWarnings(False)


def test_a_token_of_the_wrong_type_is_not_quoted() -> None:
    with pytest.raises(ConfigError) as e:
        config.from_mapping({"token": 918273645546372819})
    assert "918273645546372819" not in str(e.value) and "token: expected a string" in str(e.value)


def test_a_yaml_error_names_the_place_not_the_line(tmp_path: Path) -> None:
    path = tmp_path / "kubemeta.yaml"
    path.write_text(f'kubernetes_url: https://api:6443\ntoken: "{SECRET}\nnode_name: [x\n')
    with pytest.raises(ConfigError) as e:
        configfile.load(str(path))
    assert SECRET[:12] not in str(e.value)
    assert f"{path}:4:1: not valid YAML" in str(e.value)
    assert "quoted scalar that starts at line 2, column 8" in str(e.value)
    assert e.value.__cause__ is None and e.value.__suppress_context__


def test_check_never_prints_the_token(tmp_path: Path) -> None:
    path = tmp_path / "kubemeta.yaml"
    path.write_text("token: 918273645546372819\n")
    out = subprocess.run([KUBEMETA_BIN, "check", "--config", str(path)], capture_output=True,
                         text=True, timeout=60, env={})
    assert out.returncode == 2 and "FAIL config" in out.stdout
    assert "918273645546372819" not in out.stdout + out.stderr


def test_a_token_file_of_two_lines_is_refused_without_its_value(
        tmp_path: Path, emulator: ApiEmulator, caplog: pytest.LogCaptureFixture) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(f"{SECRET}\nsecond-line-of-the-file\n")
    with caplog.at_level(logging.ERROR, "kubemeta"):
        assert TokenFile(None, str(token_file)).get() is None
        cfg = config.Config(kubernetes_url=emulator.url, ca_file=emulator.pki.ca_file,
                            token_file=str(token_file))
        with pytest.raises(ApiUnauthorized) as e:  # sent no token: not a ValueError with it
            App(cfg).api().get_namespace("default")
    assert SECRET not in str(e.value) and SECRET not in caplog.text
    assert str(token_file) in caplog.text and "does not hold one token" in caplog.text


def test_kubemetas_log_is_private_and_redacts_secrets(tmp_path: Path, own_log: None) -> None:
    log_file = tmp_path / "kubemeta.log"
    text.secret(SECRET)
    logsink.setup(str(log_file), "info", helper=False, journal=False)
    log = logging.getLogger("kubemeta.test")
    log.error("the API said: bad token %s", SECRET)
    try:
        raise ValueError(f"Invalid header value b'Bearer {SECRET}'")
    except ValueError:
        log.exception("a request failed")
    logging.getLogger("kubemeta").handlers[0].flush()
    written = log_file.read_text()
    assert SECRET not in written
    assert written.count(text.REDACTED) == 2  # the message, and the exception in the traceback
    assert os.stat(log_file).st_mode & 0o777 == 0o640


def test_a_log_file_left_readable_to_all_is_tightened(tmp_path: Path, own_log: None) -> None:
    log_file = tmp_path / "kubemeta.log"
    log_file.write_text("")
    log_file.chmod(0o644)
    logsink.setup(str(log_file), "info", helper=False, journal=False)
    assert os.stat(log_file).st_mode & 0o777 == 0o640


def test_a_token_file_that_cannot_be_read_is_named_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    missing = tmp_path / "tokn"
    tokens = TokenFile(None, str(missing))
    with caplog.at_level(logging.ERROR, "kubemeta"):
        assert tokens.get() is None and tokens.get() is None
    assert caplog.text.count(f"cannot read the token file {missing}: No such file") == 1
    assert "no token is sent until it can be read" in caplog.text
