"""Real parts for end-to-end tests: an rsyslogd built from the shipped snippet,
container log files as the kubelet lays them out, and kubemeta's config."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml

from apiemulator.objects import container_id
from kubemeta import config

REPO = Path(__file__).resolve().parent.parent
# KUBEMETA_INSTALLED=1 (the Debian package's autopkgtest) points the suite at the
# installed package: the command, the snippets and the example that operators get.
INSTALLED = os.environ.get("KUBEMETA_INSTALLED") == "1"
if INSTALLED:
    SHIPPED = Path("/usr/share/kubemeta/rsyslog.d")
    KUBEMETA_BIN = Path("/usr/bin/kubemeta")
    EXAMPLE_CONFIG = Path("/usr/share/doc/kubemeta/examples/kubemeta.yaml")
else:
    SHIPPED = REPO / "rsyslog.d"
    KUBEMETA_BIN = Path(sys.executable).parent / "kubemeta"
    EXAMPLE_CONFIG = REPO / "examples" / "kubemeta.yaml"
DOCKER = "50-kubemeta-docker.conf"
CRI = "50-kubemeta-cri.conf"
TABLE_DOCKER = "50-kubemeta-table-docker.conf"
TABLE_CRI = "50-kubemeta-table-cri.conf"
OMPROG = "50-kubemeta-omprog.conf"
RSYSLOGD = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"


def kubemeta_config(tmp: Path, emulator: Any, token_file: Path | None, **extra: Any) -> Path:
    """kubemeta's YAML, with the node's log paths moved under ``tmp``."""
    logs = tmp / "containers"
    pods = tmp / "pods"
    data: dict[str, Any] = {
        "kubernetes_url": emulator.url,
        "ca_file": emulator.pki.ca_file,
        "state_dir": str(tmp / "state"),
        "log_file": str(tmp / "kubemeta.log"),
        "log_level": "debug",
        "filename_patterns": [
            p.replace("/var/log/containers/", f"{logs}/").replace("/var/log/pods/", f"{pods}/")
            for p in config.DEFAULT_FILENAME_PATTERNS],
        "table_file": str(tmp / "state" / "lookup-table.json"),
        "table_reload_file": str(tmp / "state" / "lookup-table.reload"),
        "table_log_files": [f"{logs}/*.log"],
    }
    if token_file is not None:
        data["token_file"] = str(token_file)
    data.update(extra)
    # As kubemeta makes it: a state_dir others may write is refused (whatever the umask,
    # which autopkgtest may leave at 000).
    (tmp / "state").mkdir(exist_ok=True)
    (tmp / "state").chmod(0o750)
    path = tmp / "kubemeta.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def enriched_socket(tmp: Path) -> Path:
    """Where the omprog setup's listener is, under ``tmp``."""
    return tmp / "enriched.sock"


def shipped_snippet(tmp: Path, kubemeta_yaml: Path, binary: Path = KUBEMETA_BIN,
                    name: str = DOCKER) -> str:
    """A shipped rsyslog.d file with only its paths substituted."""
    text = (SHIPPED / name).read_text()
    text = text.replace("/var/log/containers/", f"{tmp / 'containers'}/")
    text = text.replace("/usr/bin/kubemeta", str(binary))
    text = text.replace("/run/kubemeta-enriched.sock", str(enriched_socket(tmp)))
    text = text.replace("/var/lib/kubemeta/", f"{tmp / 'state'}/")
    return text.replace("/etc/kubemeta/kubemeta.yaml", str(kubemeta_yaml))


OUTPUT_RULESET = """
template(name="kubemeta_test_json" type="string" string="%$!%\\n")
ruleset(name="kubemeta_output") {{
    action(type="omfile" file="{out}" template="kubemeta_test_json" flushOnTXEnd="on"
           asyncWriting="off")
}}
"""


class Rsyslog:
    """An rsyslogd in the foreground with a config of our making."""

    def __init__(self, tmp: Path, body: str, name: str = "rsyslog", output: bool = True) -> None:
        self.tmp = tmp
        self.work = tmp / f"{name}-work"
        self.work.mkdir(exist_ok=True)
        self.out = tmp / f"{name}-out.json"
        self.conf = tmp / f"{name}.conf"
        self.pidfile = tmp / f"{name}.pid"
        self.stderr = tmp / f"{name}.stderr"
        header = f'global(workDirectory="{self.work}")\n'
        tail = OUTPUT_RULESET.format(out=self.out) if output else ""
        self.conf.write_text(header + body + tail)
        self.proc: subprocess.Popen[bytes] | None = None

    def validate(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run([RSYSLOGD, "-N1", "-f", str(self.conf)], capture_output=True,
                              text=True, timeout=60)

    def start(self) -> Rsyslog:
        with open(self.stderr, "ab") as err:
            self.proc = subprocess.Popen(
                [RSYSLOGD, "-n", "-f", str(self.conf), "-i", str(self.pidfile)],
                stdin=subprocess.DEVNULL, stdout=err, stderr=err, env={})
        return self

    def helpers(self, mode: str = "mmexternal", binary: Path = KUBEMETA_BIN) -> list[int]:
        """The kubemeta helpers this rsyslogd runs."""
        return helper_pids(self.proc.pid, binary, mode) if self.proc is not None else []

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def records(self) -> list[dict[str, Any]]:
        if not self.out.exists():
            return []
        # omfile may write a long record in several pieces: a last line without its
        # newline is still being written, and is read next time.
        text = self.out.read_bytes()
        complete = text[:text.rfind(b"\n") + 1].decode("utf-8")
        return [json.loads(line) for line in complete.splitlines() if line.strip()]

    def wait_records(self, n: int, timeout: float = 60.0,
                     until: Callable[[list[dict[str, Any]]], bool] | None = None
                     ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        recs: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            recs = self.records()
            if len(recs) >= n and (until is None or until(recs)):
                return recs
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"rsyslogd exited: {self.stderr.read_text()[-2000:]}")
            time.sleep(0.1)
        raise AssertionError(f"expected {n} records within {timeout}s, got {len(recs)}; "
                             f"rsyslogd said: {self.stderr.read_text()[-2000:]}")

    def __enter__(self) -> Rsyslog:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def docker_line(text: str, stream: str = "stdout", t: str = "2026-11-21T10:00:00.000000001Z"
                ) -> str:
    return json.dumps({"log": text + "\n", "stream": stream, "time": t}) + "\n"


def cri_line(text: str, stream: str = "stdout", t: str = "2026-11-21T10:00:00.000000001Z",
             piece: int = 16384) -> str:
    """One application line as containerd writes it: split into P pieces of ``piece``
    bytes, the last one F."""
    chunks = [text[i:i + piece] for i in range(0, len(text), piece)] or [""]
    tags = ["P"] * (len(chunks) - 1) + ["F"]
    return "".join(f"{t} {stream} {tag} {chunk}\n" for tag, chunk in zip(tags, chunks, strict=True))


def container_log(tmp: Path, namespace: str, pod: str, container: str,
                  uid: str | None = None) -> Path:
    d = tmp / "containers"
    d.mkdir(exist_ok=True)
    cid = container_id(namespace, pod, container, uid)
    return d / f"{pod}_{namespace}_{container}-{cid}.log"


def wait_log(log: Path, text: str, count: int = 1, timeout: float = 30.0) -> None:
    """Until the helper's own log says ``text`` ``count`` times: what the helper did,
    not a guess of how long it takes."""
    end = time.monotonic() + timeout
    while True:
        seen = log.read_text(errors="replace").count(text) if log.exists() else 0
        if seen >= count:
            return
        if time.monotonic() > end:
            raise AssertionError(f"{text!r} {seen} times, not {count}, within {timeout} s: "
                                 f"{log.read_text()[-2000:] if log.exists() else 'no log'}")
        time.sleep(0.05)


def write_lines(path: Path, lines: Iterable[str]) -> None:
    with open(path, "a", encoding="utf-8") as f:
        for line in lines:
            f.write(line)


def helper_pids(parent: int, binary: Path = KUBEMETA_BIN, mode: str = "mmexternal") -> list[int]:
    """The kubemeta helpers in ``mode`` that process ``parent`` (an rsyslogd of the
    test's own) runs from ``binary``: never another test's, or the machine's."""
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            status = (d / "status").read_text()
            ppid = int(status.split("\nPPid:", 1)[1].split(None, 1)[0])
            if ppid != parent:
                continue
            cmd = (d / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue  # it just exited
        if mode.encode() in cmd and any(str(binary).encode() in c for c in cmd):
            pids.append(int(d.name))
    return pids


class Helper:
    """kubemeta mmexternal wired as rsyslog wires it: empty environment, stderr on
    the same pipe as stdout. Any stray byte on fd 2 shows up as a bad reply."""

    def __init__(self, *args: str, binary: Path = KUBEMETA_BIN) -> None:
        self.proc = subprocess.Popen([str(binary), "mmexternal", *args], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={})
        self._buf = b""

    def ask(self, line: bytes, timeout: float = 30.0) -> bytes:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + b"\n")
        self.proc.stdin.flush()
        return self.read_line(timeout)

    def read_line(self, timeout: float = 30.0) -> bytes:
        import select

        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        end = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError("no reply within timeout")
            r, _, _ = select.select([fd], [], [], left)
            if r:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    raise AssertionError(f"helper exited; unread: {self._buf!r}")
                self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line

    def extra_output(self, wait: float = 0.2) -> bytes:
        """Anything the helper wrote beyond the replies asked for."""
        import select

        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        r, _, _ = select.select([fd], [], [], wait)
        return self._buf + (os.read(fd, 1 << 16) if r else b"")

    def close(self, timeout: float = 10.0) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def fulljson(filename: str | None, **fields: Any) -> bytes:
    """A line shaped as rsyslog 8.2302's fulljson: spaced, "/" escaped, all strings."""
    tree: dict[str, Any] = dict(fields)
    if filename is not None:
        tree["metadata"] = {"filename": filename, "fileoffset": "0"}
    obj = {"msg": "", "rawmsg": "raw", "timereported": "2026-11-21T10:00:00.000000+00:00",
           "hostname": "node-1", "syslogtag": "kubernetes", "inputname": "imfile",
           "fromhost": "", "fromhost-ip": "", "pri": "133", "syslogfacility": "16",
           "syslogseverity": "5", "timegenerated": "2026-11-21T10:00:00.000000+00:00",
           "programname": "kubernetes", "protocol-version": "0", "structured-data": "-",
           "app-name": "kubernetes", "procid": "-", "msgid": "-", "uuid": None,
           "$!": tree or None}
    return json.dumps(obj, separators=(", ", ": ")).replace("/", "\\/").encode()


class LineConsumer:
    """A listening socket (unix path, or ("127.0.0.1", 0) for TCP) whose connections
    are read line by line into ``lines``. ``reading`` paused stops the reads;
    ``close`` drops listener and connections abruptly (unread bytes are lost, as
    when a consumer dies) and ``open`` listens again at the same address."""

    def __init__(self, address: str | tuple[str, int]) -> None:
        self.address = address
        self.lines: list[bytes] = []
        self.lock = threading.Lock()
        self.reading = threading.Event()
        self.reading.set()
        self.conns: list[socket.socket] = []
        self.srv: socket.socket | None = None
        self.open()

    def open(self) -> None:
        if isinstance(self.address, str):
            if os.path.exists(self.address):
                os.unlink(self.address)
            srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        else:
            srv = socket.socket()
        srv.bind(self.address)
        self.address = srv.getsockname() if not isinstance(self.address, str) else self.address
        srv.listen()
        self.srv = srv
        threading.Thread(target=self._accept, args=(srv,), daemon=True).start()

    def close(self) -> None:
        assert self.srv is not None
        # shutdown() first: close() alone leaves a thread blocked in accept() listening.
        self.srv.shutdown(socket.SHUT_RDWR)
        self.srv.close()
        for c in self.conns:
            c.close()
        self.conns = []

    def _accept(self, srv: socket.socket) -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        buf = b""
        while True:
            self.reading.wait()
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                return
            buf += data
            *done, buf = buf.split(b"\n")
            with self.lock:
                self.lines.extend(done)

    def wait_lines(self, n: int, timeout: float = 10.0) -> list[bytes]:
        deadline = time.monotonic() + timeout
        while len(self.lines) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        with self.lock:
            return list(self.lines)


class Daemon:
    """``kubemeta serve``, as its systemd unit runs it (Type=notify)."""

    def __init__(self, cfg: Path) -> None:
        self.cfg = cfg
        self.proc: subprocess.Popen[bytes] | None = None
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        # Abstract, as systemd's often is (and no path to outgrow sun_path).
        self.address = f"@kubemeta-test-notify-{os.getpid()}-{id(self)}"
        self.notify.bind("\0" + self.address[1:])

    def start(self) -> Daemon:
        """Started, and READY (its first table is written)."""
        self.proc = subprocess.Popen([str(KUBEMETA_BIN), "serve", "--config", str(self.cfg)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL,
                                     env={"NOTIFY_SOCKET": self.address})
        self.notify.settimeout(30)
        assert self.notify.recv(64) == b"READY=1"
        assert (self.cfg.parent / "state" / "lookup-table.json").exists()
        return self

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        rc = self.proc.wait(30)
        self.proc = None
        if sig == signal.SIGTERM:
            assert rc == 0 and self.notify.recv(64) == b"STOPPING=1"
        return rc


def table_entries(tmp: Path) -> dict[str, dict[str, Any]]:
    path = tmp / "state" / "lookup-table.json"
    if not path.exists():
        return {}
    doc = json.loads(path.read_bytes())
    return {e["index"]: json.loads(e["value"]) for e in doc["table"]}


def wait_table(tmp: Path, until: Any, timeout: float = 30.0) -> dict[str, dict[str, Any]]:
    end = time.monotonic() + timeout
    while True:
        entries = table_entries(tmp)
        if until(entries):
            return entries
        if time.monotonic() > end:
            raise AssertionError(f"the table never got there: {sorted(entries)}")
        time.sleep(0.05)
