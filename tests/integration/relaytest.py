"""Helpers for the relay integration tests: processes (relay, smtp-sink), a raw SMTP client,
the real command-line clients (swaks, curl, openssl s_client) and /metrics parsing.

Everything here talks to real sockets on 127.0.0.0/8 only, every wait is bounded, and every
process is stopped by its PID.
"""

from __future__ import annotations

import atexit
import base64
import copy
import os
import random
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
DEFAULT_RELAY = REPO / "build" / "relay" / "kuberelay-relay"
SMTP_SINK = "/usr/sbin/smtp-sink"
HOSTNAME = "relay.test"

# The unprivileged stand-ins for 25/587/465 used by the examples, and the example smarthost.
STANDARD_PORTS = (2525, 2587, 2465)
EXAMPLE_SMARTHOST_PORT = 2526


def relay_binary() -> Path:
    path = Path(os.environ.get("KUBERELAY_RELAY") or DEFAULT_RELAY)
    if not path.is_file() or not os.access(path, os.X_OK):
        raise RuntimeError(
            f"relay binary not found or not executable: {path} "
            "(set KUBERELAY_RELAY, or build it: cmake -S . -B build -G Ninja && ninja -C build kuberelay-relay)"
        )
    return path


# --------------------------------------------------------------------------------------------
# Ports and sockets

_handed_out: set[int] = set()
_ports_lock = threading.Lock()


def _ephemeral_range() -> tuple[int, int]:
    try:
        lo, hi = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A TCP port nobody listens on, outside the kernel's ephemeral range (so that no client
    connection of this suite can be holding it), not handed out before by this process."""
    lo, hi = _ephemeral_range()
    candidates = [p for p in range(20000, 65000) if not lo <= p <= hi] or list(range(20000, 32000))
    rng = random.Random(os.getpid() ^ time.monotonic_ns())
    with _ports_lock:
        for _ in range(500):
            port = rng.choice(candidates)
            if port in _handed_out:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    s.bind(("0.0.0.0", port))
                except OSError:
                    continue
            _handed_out.add(port)
            return port
    raise RuntimeError("no free port")


def listening_ports() -> set[int]:
    ports = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) > 3 and parts[3] == "0A":  # LISTEN
                ports.add(int(parts[1].rsplit(":", 1)[1], 16))
    return ports


def wait_listening(ports, timeout: float, proc: subprocess.Popen | None = None) -> bool:
    deadline = time.monotonic() + timeout
    want = set(ports)
    while time.monotonic() < deadline:
        if want <= listening_ports():
            return True
        if proc is not None and proc.poll() is not None:
            return False
        time.sleep(0.05)
    return False


def stop_process(proc: subprocess.Popen, term_timeout: float = 5.0) -> None:
    """SIGTERM, a bounded wait, then SIGKILL - always by PID."""
    if proc.poll() is not None:
        return
    try:
        os.kill(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=term_timeout)
        return
    except subprocess.TimeoutExpired:
        pass
    try:
        os.kill(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    proc.wait(timeout=5)


# --------------------------------------------------------------------------------------------
# TLS material of the examples

def example_certificate_pem() -> bytes:
    docs = list(yaml.safe_load_all((EXAMPLES / "000-anonymous-web-app" / "secret-tls.yaml").read_text()))
    return base64.b64decode(docs[0]["data"]["tls.crt"])


_ca_file: Path | None = None


def ca_file() -> Path:
    """The example certificate (CN=localhost, SAN localhost and 127.0.0.1) as a CA file."""
    global _ca_file
    if _ca_file is None or not _ca_file.exists():
        d = Path(tempfile.mkdtemp(prefix="kr-ca-"))
        atexit.register(shutil.rmtree, d, True)
        _ca_file = d / "tls.crt"
        _ca_file.write_bytes(example_certificate_pem())
    return _ca_file


def client_tls_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca_file()))
    ctx.check_hostname = True
    return ctx


# --------------------------------------------------------------------------------------------
# Replies

ENHANCED = re.compile(r"^([245]\.\d{1,3}\.\d{1,3})(?: |$)")


@dataclass
class Reply:
    code: int
    lines: list[str]  # text of each line, without the code

    @property
    def text(self) -> str:
        return self.lines[-1] if self.lines else ""

    @property
    def enhanced(self) -> str:
        m = ENHANCED.match(self.lines[0] if self.lines else "")
        return m.group(1) if m else ""

    @property
    def status(self) -> str:
        """'250 2.1.0', or '334' when there is no enhanced code."""
        return f"{self.code} {self.enhanced}".strip()

    def __str__(self) -> str:
        return "\n".join(f"{self.code} {line}" for line in self.lines)


def parse_replies(data: bytes) -> list[Reply]:
    """Every complete reply in a byte stream."""
    out: list[Reply] = []
    lines: list[str] = []
    for raw in data.split(b"\n"):
        line = raw.rstrip(b"\r").decode("utf-8", "replace")
        m = re.match(r"^(\d{3})([ -])(.*)$", line) or re.match(r"^(\d{3})()()$", line)
        if not m:
            continue
        lines.append(m.group(3))
        if m.group(2) != "-":
            out.append(Reply(int(m.group(1)), lines))
            lines = []
    return out


class ConnectionClosed(Exception):
    pass


class RawSMTP:
    """A byte-exact SMTP client: nothing is sent that the test did not write."""

    def __init__(self, port: int, source: str = "127.0.0.1", host: str = "127.0.0.1",
                 timeout: float = 10.0, preamble: bytes | None = None, tls: bool = False):
        self.port = port
        self.host = host
        self.timeout = timeout
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.bind((source, 0))
            self.sock.connect((host, port))
        except OSError:
            self.sock.close()
            raise
        self.buf = b""
        self.eof = False
        if preamble:
            self.sock.sendall(preamble)
        if tls:
            self.sock = client_tls_context().wrap_socket(self.sock, server_hostname="localhost")

    # -- I/O
    def send(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _fill(self, deadline: float) -> bool:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no reply within the time limit; buffered: {self.buf!r}")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout as e:
            raise TimeoutError(f"no reply within the time limit; buffered: {self.buf!r}") from e
        except (ConnectionResetError, ssl.SSLError, OSError):
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def reply(self, timeout: float | None = None) -> Reply:
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        lines: list[str] = []
        while True:
            nl = self.buf.find(b"\n")
            if nl < 0:
                if self.eof or not self._fill(deadline):
                    raise ConnectionClosed(f"connection closed; partial reply {lines!r} {self.buf!r}")
                continue
            raw, self.buf = self.buf[:nl], self.buf[nl + 1:]
            line = raw.rstrip(b"\r").decode("utf-8", "replace")
            m = re.match(r"^(\d{3})([ -]?)(.*)$", line)
            if not m:
                raise AssertionError(f"malformed reply line {line!r}")
            lines.append(m.group(3))
            if m.group(2) != "-":
                return Reply(int(m.group(1)), lines)

    def cmd(self, line: str | bytes, timeout: float | None = None) -> Reply:
        if isinstance(line, str):
            line = line.encode()
        self.send(line + b"\r\n")
        return self.reply(timeout)

    def greeting(self) -> Reply:
        return self.reply()

    def ehlo(self, name: str = "client.test") -> Reply:
        return self.cmd(f"EHLO {name}")

    def starttls(self) -> Reply:
        r = self.cmd("STARTTLS")
        if r.code == 220:
            self.upgrade()
        return r

    def upgrade(self) -> None:
        assert not self.buf, f"plaintext left before TLS: {self.buf!r}"
        self.sock.settimeout(self.timeout)
        self.sock = client_tls_context().wrap_socket(self.sock, server_hostname="localhost")

    def closed_by_peer(self, timeout: float = 5.0) -> bool:
        """True once the relay closes the connection (after any pending bytes)."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            try:
                if not self._fill(deadline):
                    return True
            except TimeoutError:
                return False
        return True

    def pending_bytes(self, wait: float = 0.5) -> bytes:
        """Whatever the relay sends within `wait` seconds (without consuming a reply)."""
        deadline = time.monotonic() + wait
        try:
            while self._fill(deadline):
                pass
        except TimeoutError:
            pass
        return self.buf

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- conveniences
    def auth_plain(self, user: str, password: str) -> Reply:
        token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        return self.cmd(f"AUTH PLAIN {token}")

    def send_message(self, sender: str, recipients: list[str], body: bytes) -> list[Reply]:
        """MAIL, RCPT..., DATA, content, '.'; returns every reply (stops at the first failure)."""
        out = [self.cmd(f"MAIL FROM:<{sender}>")]
        if out[-1].code != 250:
            return out
        ok = 0
        for r in recipients:
            out.append(self.cmd(f"RCPT TO:<{r}>"))
            ok += out[-1].code == 250
        if not ok:
            return out
        out.append(self.cmd("DATA"))
        if out[-1].code != 354:
            return out
        self.send(dot_stuff(body) + b".\r\n")
        out.append(self.reply())
        return out


def dot_stuff(body: bytes) -> bytes:
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    lines = body.split(b"\r\n")
    return b"\r\n".join(b"." + l if l.startswith(b".") else l for l in lines)


def message(subject: str = "test", body: str = "hello\r\n", headers: dict | None = None,
            test_id: str | None = None) -> bytes:
    h = {"From": "sender@example.com", "To": "someone@example.org", "Subject": subject}
    if test_id:
        h["X-Test-Id"] = test_id
    h.update(headers or {})
    head = "".join(f"{k}: {v}\r\n" for k, v in h.items())
    return (head + "\r\n" + body).encode()


# --------------------------------------------------------------------------------------------
# smtp-sink: the next hop

@dataclass
class SinkMessage:
    path: Path
    client_addr: str
    helo: str
    mail_from: str          # the address inside <>
    mail_args: str          # the whole MAIL FROM argument
    rcpts: list[str]
    content: str            # the content as the next hop took it: dot-stuffing removed, '\n' line ends

    def header(self, name: str) -> list[str]:
        head = self.content.split("\n\n", 1)[0]
        out = []
        for line in re.sub(r"\n[ \t]", " ", head).split("\n"):
            if line.lower().startswith(name.lower() + ":"):
                out.append(line.split(":", 1)[1].strip())
        return out

    @property
    def body(self) -> str:
        parts = self.content.split("\n\n", 1)
        return parts[1] if len(parts) > 1 else ""


def _address(arg: str) -> str:
    m = re.match(r"\s*<([^>]*)>", arg)
    return m.group(1) if m else arg.strip()


def parse_sink_dump(path: Path) -> SinkMessage:
    text = path.read_bytes().decode("utf-8", "replace")
    lines = text.split("\n")
    meta = {"X-Client-Addr": "", "X-Helo-Args": "", "X-Mail-Args": ""}
    rcpts = []
    i = 0
    while i < len(lines) and not lines[i].startswith("Received: "):
        k, _, v = lines[i].partition(": ")
        if k == "X-Rcpt-Args":
            rcpts.append(_address(v))
        else:
            meta[k] = v
        i += 1
    i += 1  # the sink's own Received header: one line and its continuation lines
    while i < len(lines) and lines[i].startswith("\t"):
        i += 1
    rest = "\n".join(lines[i:])
    # smtp-sink removes the dot-stuffing and writes '\n' line ends; it adds one empty line.
    content = rest[:-1] if rest.endswith("\n\n") else rest
    return SinkMessage(path, meta["X-Client-Addr"], meta["X-Helo-Args"], _address(meta["X-Mail-Args"]),
                       meta["X-Mail-Args"], rcpts, content)


class Sink:
    def __init__(self, workdir: Path, reject_hard: str = "", reject_soft: str = "",
                 disconnect_421: str = "", data_delay: int = 0, port: int | None = None):
        self.port = port or free_port()
        # smtp-sink drops privileges to nobody: its dump directory must be reachable by nobody
        # (pytest's tmp_path is under a 0700 directory), so it lives directly under /tmp.
        self.dir = Path(tempfile.mkdtemp(prefix="kr-sink-", dir="/tmp"))
        os.chmod(self.dir, 0o777)
        self.log_path = workdir / f"smtp-sink-{self.port}.log"
        args = [SMTP_SINK, "-u", "nobody", "-h", "sink.test", "-d", f"{self.dir}/%Y%m%d%H%M%S."]
        if reject_hard:
            args += ["-f", reject_hard]
        if reject_soft:
            args += ["-r", reject_soft]
        if disconnect_421:
            args += ["-Q", disconnect_421]
        if data_delay:
            args += ["-w", str(data_delay)]
        args += [f"127.0.0.1:{self.port}", "64"]
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        if not wait_listening([self.port], 10, self.proc):
            self.stop()
            raise RuntimeError(f"smtp-sink did not listen on {self.port}: {self.log_path.read_text()}")

    def files(self) -> list[Path]:
        # smtp-sink leaves an empty file behind for a transaction abandoned during DATA: that
        # is not a message it took.
        return sorted(p for p in self.dir.iterdir() if p.is_file() and p.stat().st_size > 0)

    def messages(self) -> list[SinkMessage]:
        return [parse_sink_dump(p) for p in self.files()]

    def wait_for(self, count: int, timeout: float = 5.0) -> list[SinkMessage]:
        """At least `count` messages (bounded wait), then a short settle to catch extras."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.files()) < count:
            time.sleep(0.05)
        time.sleep(0.2)
        return self.messages()

    def assert_empty(self, settle: float = 0.5) -> None:
        time.sleep(settle)
        files = self.files()
        assert not files, f"the next hop received mail it should not have: {[p.read_text() for p in files]}"

    def stop(self) -> None:
        stop_process(self.proc)
        self._log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# The relay

def deep_merge(dst: dict, patch: dict) -> dict:
    for k, v in patch.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            deep_merge(dst[k], v)
        else:
            dst[k] = copy.deepcopy(v)
    return dst


def _port_of(binding: str) -> tuple[str, int]:
    addr, _, port = binding.rpartition(":")
    return addr, int(port)


class Relay:
    """A kuberelay-relay process in local mode on a rewritten copy of an example folder."""

    def __init__(self, example: str, workdir: Path, sink: Sink | None = None, *,
                 connectors: dict | None = None, all_connectors: dict | None = None,
                 edit=None, fast: bool = True, next_hop_timeout: int = 5,
                 drain_timeout: int = 2, extra_files: dict | None = None,
                 drop_files: tuple = (), dead_smarthost: bool = False, allow_policy_errors: bool = False,
                 extra_args: tuple = ()):
        self.example = example
        src = EXAMPLES / example
        if not src.is_dir():
            raise RuntimeError(f"no example folder {src}")
        self.workdir = workdir
        self.dir = Path(tempfile.mkdtemp(prefix="manifests-", dir=workdir))
        self.drop_dir = Path(tempfile.mkdtemp(prefix="drop-", dir=workdir))
        self.sink = sink
        self.log_path = Path(tempfile.mkstemp(prefix="relay-", suffix=".log", dir=workdir)[1])
        self.ports: dict[int, int] = {}  # example port -> the port the relay listens on here
        self.bindings: list[str] = []
        if sink is not None:
            self.smarthost_port = sink.port
        else:
            self.smarthost_port = free_port()  # nothing listens there: a next hop that is down
        self.dead_smarthost = dead_smarthost or sink is None

        files: dict[str, list] = {}
        for f in sorted(src.glob("*.yaml")):  # top level only: sub-folders are other variants
            if f.name in drop_files:
                continue
            files[f.name] = [d for d in yaml.safe_load_all(f.read_text()) if d]
        for name, docs in (extra_files or {}).items():
            files[name] = copy.deepcopy(docs)

        for port in STANDARD_PORTS:  # consistent mapping for the usual stand-ins
            self.ports[port] = free_port()
        for docs in files.values():
            for d in docs:
                if d.get("kind") != "ReceiveConnector":
                    continue
                spec = d.setdefault("spec", {})
                name = d["metadata"]["name"]
                if fast:
                    deep_merge(spec, {"limits": {"tarpitInterval": "0s", "authTarpitInterval": "0s"}})
                if all_connectors:
                    deep_merge(spec, all_connectors)
                if connectors and name in connectors:
                    deep_merge(spec, connectors[name])
                new = []
                for b in spec.get("bindings", []):
                    addr, port = _port_of(b)
                    if port not in self.ports:
                        self.ports[port] = free_port()
                    new.append(f"{addr}:{self.ports[port]}")
                    if spec.get("enabled", True):
                        self.bindings.append(new[-1])
                spec["bindings"] = new
                fwd = spec.get("forwarding", {})
                if "smarthosts" in fwd:
                    fwd["smarthosts"] = [f"127.0.0.1:{self.smarthost_port}"]
                if "dropDirectory" in fwd:
                    fwd["dropDirectory"] = str(self.drop_dir)
        if connectors:
            known = {d["metadata"]["name"] for docs in files.values() for d in docs
                     if d.get("kind") == "ReceiveConnector"}
            missing = set(connectors) - known
            if missing:
                raise RuntimeError(f"edits for unknown connectors {missing} in {example}")
        if edit:
            edit(files)
        self.files = files
        for name, docs in files.items():
            self.write(name, docs)

        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [str(relay_binary()), "--manifests", str(self.dir), "--admin", "127.0.0.1:0",
             "--hostname", HOSTNAME, "--drain-timeout", str(drain_timeout),
             "--next-hop-timeout", str(next_hop_timeout), *extra_args],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.admin_port = 0
        try:
            self._wait_ready(10.0)
            errors = [l for l in self.log().splitlines() if 'msg="policy error"' in l]
            if errors and not allow_policy_errors:
                raise RuntimeError("the test's manifests have policy errors:\n" + "\n".join(errors))
        except Exception:
            self.stop()
            raise

    # -- lifecycle
    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.admin_port:
            m = re.search(r'msg="admin listening" address=127\.0\.0\.1:(\d+)', self.log())
            if m:
                self.admin_port = int(m.group(1))
                break
            if self.proc.poll() is not None:
                raise RuntimeError(f"the relay exited with {self.proc.returncode}:\n{self.log()}")
            time.sleep(0.02)
        if not self.admin_port:
            raise RuntimeError(f"the relay did not log its admin address:\n{self.log()}")
        while time.monotonic() < deadline:
            status, _ = self.readyz()
            if status == 200:
                break
            if self.proc.poll() is not None:
                raise RuntimeError(f"the relay exited with {self.proc.returncode}:\n{self.log()}")
            time.sleep(0.05)
        else:
            raise RuntimeError(f"/readyz did not answer 200 within {timeout}s:\n{self.log()}")
        listen = {_port_of(b)[1] for b in self.bindings}
        if not wait_listening(listen, max(0.1, deadline - time.monotonic()), self.proc):
            raise RuntimeError(f"the relay does not listen on {sorted(listen)}:\n{self.log()}")

    def stop(self) -> int | None:
        """Stops the relay by PID; returns its exit status (None if it had to be killed)."""
        was_running = self.proc.poll() is None
        stop_process(self.proc)
        self._log.close()
        return self.proc.returncode if was_running else self.proc.returncode

    def alive(self) -> bool:
        return self.proc.poll() is None

    # -- manifests
    def write(self, name: str, docs: list) -> None:
        """Writes a manifest atomically (the relay never sees half a file)."""
        tmp = self.dir / f".{name}.tmp"
        tmp.write_text(yaml.safe_dump_all(docs, sort_keys=False))
        os.replace(tmp, self.dir / name)

    def write_text(self, name: str, text: str) -> None:
        tmp = self.dir / f".{name}.tmp"
        tmp.write_text(text)
        os.replace(tmp, self.dir / name)

    def remove(self, name: str) -> None:
        (self.dir / name).unlink()

    # -- addresses
    def port(self, example_port: int = 2525) -> int:
        return self.ports[example_port]

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    # -- admin endpoint
    def http_get(self, path: str, timeout: float = 5.0) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.admin + path, timeout=timeout) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except (urllib.error.URLError, ConnectionError, TimeoutError, socket.timeout):
            return 0, ""

    def readyz(self) -> tuple[int, str]:
        return self.http_get("/readyz")

    def version(self) -> str:
        status, body = self.readyz()
        assert status == 200, (status, body)
        return body.split()[1]

    def metrics(self) -> "Metrics":
        status, body = self.http_get("/metrics")
        assert status == 200, f"/metrics answered {status}"
        return Metrics(body)

    def metric(self, name: str, **labels) -> float:
        return self.metrics().value(name, **labels)

    # -- log
    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def wait_log(self, pattern: str, timeout: float = 5.0, count: int = 1) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(re.findall(pattern, self.log())) >= count:
                return True
            time.sleep(0.05)
        return False

    def wait_version_change(self, old: str, timeout: float = 6.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, body = self.readyz()
            if status == 200 and body.split()[1] != old:
                return body.split()[1]
            time.sleep(0.05)
        raise AssertionError(f"the policy version stayed {old} for {timeout}s:\n{self.log()[-3000:]}")

    def drop_files(self) -> list[Path]:
        return sorted(self.drop_dir.glob("*.eml"))


# --------------------------------------------------------------------------------------------
# /metrics

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


class Metrics:
    def __init__(self, text: str):
        self.text = text
        self.samples: list[tuple[str, dict, float]] = []
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            m = _SAMPLE.match(line)
            if not m:
                continue
            labels = dict(_LABEL.findall(m.group(2) or ""))
            self.samples.append((m.group(1), labels, float(m.group(3))))

    def series(self, name: str) -> list[tuple[dict, float]]:
        return [(l, v) for n, l, v in self.samples if n == name]

    def value(self, name: str, **labels) -> float:
        """The sum of the series of `name` whose labels include `labels` (0 when none)."""
        return sum(v for l, v in self.series(name) if all(l.get(k) == str(x) for k, x in labels.items()))


# --------------------------------------------------------------------------------------------
# Command-line clients

def run(args: list[str], input: bytes | None = None, timeout: float = 20.0) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(args, input=input, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"{args[0]} did not finish within {timeout}s: {e.stdout!r} {e.stderr!r}") from e


def swaks(port: int, *args: str, source: str = "127.0.0.1", timeout: float = 20.0) -> tuple[int, list[Reply], str]:
    """Runs swaks; returns its exit code, the server replies it saw, and the transcript."""
    cmd = ["swaks", "--server", "127.0.0.1", "--port", str(port), "--local-interface", source,
           "--timeout", "10", "--helo", "swaks.test", *args]
    p = run(cmd, timeout=timeout)
    transcript = p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace")
    replies = []
    pending: list[str] = []
    for line in transcript.splitlines():
        # "<-  250 ..." plain, "<~  250 ..." TLS, "<** 530 ..." / "<~* 530 ..." errors
        m = re.match(r"^\s*<[-~*][-~* ]?\s*(\d{3})([ -]?)(.*)$", line)
        if not m:
            continue
        pending.append(m.group(3))
        if m.group(2) != "-":
            replies.append(Reply(int(m.group(1)), pending))
            pending = []
    return p.returncode, replies, transcript


def curl_smtp(url: str, sender: str, recipients: list[str], body: bytes, *extra: str,
              source: str = "127.0.0.1", timeout: float = 20.0) -> tuple[int, list[Reply], str]:
    """curl as an SMTP client; returns its exit code, the server replies (from -v) and stderr."""
    cmd = ["curl", "-sS", "-v", "--max-time", "15", "--interface", source, "--url", url,
           "--mail-from", sender, "--upload-file", "-"]
    for r in recipients:
        cmd += ["--mail-rcpt", r]
    cmd += list(extra)
    p = run(cmd, input=body, timeout=timeout)
    err = p.stderr.decode(errors="replace")
    replies = []
    pending: list[str] = []
    for line in err.splitlines():
        m = re.match(r"^< (\d{3})([ -]?)(.*)$", line)
        if not m:
            continue
        pending.append(m.group(3))
        if m.group(2) != "-":
            replies.append(Reply(int(m.group(1)), pending))
            pending = []
    return p.returncode, replies, err


def openssl_starttls(port: int, script: list[str], timeout: float = 20.0) -> tuple[int, list[Reply], str]:
    """`openssl s_client -starttls smtp -crlf -quiet` fed a scripted conversation on stdin.

    s_client sends its own EHLO and STARTTLS; the script starts after the handshake. The
    script must end with QUIT so that the relay closes the connection and s_client exits."""
    cmd = ["openssl", "s_client", "-starttls", "smtp", "-connect", f"127.0.0.1:{port}",
           "-crlf", "-quiet", "-CAfile", str(ca_file()), "-verify_return_error",
           "-verify_hostname", "localhost"]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(("\n".join(script) + "\n").encode(), timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_process(proc)
        out, err = proc.communicate()
        raise AssertionError(f"openssl s_client did not finish: {out!r} {err!r}")
    return proc.returncode, parse_replies(out), err.decode(errors="replace")


def statuses(replies: list[Reply]) -> list[str]:
    return [r.status for r in replies]


# --------------------------------------------------------------------------------------------
# smtplib conveniences

import smtplib  # noqa: E402


def status(reply) -> str:
    """'250 2.1.0' from a Reply, a smtplib (code, bytes) tuple or an SMTPResponseException."""
    if isinstance(reply, Reply):
        return reply.status
    if isinstance(reply, smtplib.SMTPResponseException):
        code, msg = reply.smtp_code, reply.smtp_error
    else:
        code, msg = reply
    text = msg.decode(errors="replace") if isinstance(msg, bytes) else str(msg)
    m = ENHANCED.match(text)
    return f"{code} {m.group(1)}" if m else str(code)


def client(port: int, source: str = "127.0.0.1", starttls: bool = False, login: tuple | None = None,
           mechanism: str = "PLAIN", helo: str = "client.test", timeout: float = 10.0) -> smtplib.SMTP:
    """A smtplib client from `source`, after EHLO (and STARTTLS + EHLO, and AUTH when asked)."""
    c = smtplib.SMTP("127.0.0.1", port, local_hostname=helo, source_address=(source, 0), timeout=timeout)
    code, _ = c.ehlo()
    assert code == 250
    if starttls:
        code, msg = c.starttls(context=client_tls_context())
        assert code == 220, (code, msg)
        c.ehlo()
    if login:
        user, password = login
        c.user, c.password = user, password
        auth = c.auth_plain if mechanism == "PLAIN" else c.auth_login
        code, msg = c.auth(mechanism, auth, initial_response_ok=mechanism == "PLAIN")
        assert code == 235, (code, msg)
    return c


def transaction(c: smtplib.SMTP, sender: str, recipients: list[str], body: bytes | None = None,
                mail_options: tuple = ()) -> list[str]:
    """MAIL, RCPT..., DATA with smtplib's own calls; the status of each reply (stops at a refusal).

    The last entry is the reply to the end of the data (or to DATA when it is refused)."""
    out = [status(c.mail(sender, list(mail_options)))]
    if not out[0].startswith("250"):
        return out
    accepted = 0
    for r in recipients:
        out.append(status(c.rcpt(r)))
        accepted += out[-1].startswith("250")
    if not accepted or body is None:
        return out
    try:
        out.append(status(c.data(body)))
    except smtplib.SMTPDataError as e:
        out.append(status(e))
    return out


def quit_quietly(c: smtplib.SMTP) -> None:
    try:
        c.quit()
    except (smtplib.SMTPException, OSError):
        c.close()


def received_by_relay(m: SinkMessage) -> str:
    """The relay's Received header (the first one of the content), unfolded."""
    headers = m.header("Received")
    assert headers, f"no Received header in {m.content!r}"
    return headers[0]
