"""Helpers of the adversarial tier (tests/integration's relaytest.py does the rest).

* ``Tap`` / ``NextHop``: Postfix's smtp-sink behind a byte-recording TCP tap. The relay's
  smarthost is the tap, which records every byte the relay sends to the next hop and splits the
  stream into commands and message contents.
* ``session``, ``replies``, ``read_all``: a raw client from a chosen 127.0.0.x source, and
  bounded reads of exact reply sequences.
"""

from __future__ import annotations

import selectors
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

INTEGRATION = Path(__file__).resolve().parents[1] / "integration"
if str(INTEGRATION) not in sys.path:
    sys.path.insert(0, str(INTEGRATION))

from relaytest import ConnectionClosed, RawSMTP, Sink, free_port  # noqa: E402

# Who is who in examples/003-anonymous-relay-ip-restricted (port 2525), the policy most of this
# tier attacks: 127.0.0.17 is on anonymous-relay's list (Accept-Any-Recipient: may relay),
# 127.0.0.25 is externally secured, every other 127.0.0.x falls to internet-default (anonymous,
# no relay right: only example.com recipients).
SEED_003 = "003-anonymous-relay-ip-restricted"
ON_LIST = "127.0.0.17"
OFF_LIST = "127.0.0.1"
ACCEPTED = "example.com"
EXTERNAL = "external.test"

@dataclass
class TapMessage:
    conn: int
    command: str        # "DATA" or the BDAT sequence
    raw: bytes          # as sent on the wire (dot-stuffed for DATA, with the final ".\r\n")

    @property
    def content(self) -> bytes:
        """The content the next hop takes: for DATA, without the end mark and the stuffing."""
        if self.command != "DATA":
            return self.raw
        body = self.raw[:-3] if self.raw.endswith(b".\r\n") else self.raw
        lines = body.split(b"\r\n")
        return b"\r\n".join(l[1:] if l.startswith(b".") else l for l in lines)


class _Stream:
    """Incremental parser of the relay-to-next-hop byte stream of one connection."""

    def __init__(self, conn: int, tap: "Tap"):
        self.conn = conn
        self.tap = tap
        self.buf = b""
        self.mode = "cmd"      # cmd | data | bdat
        self.data = b""
        self.bdat_left = 0
        self.bdat_last = False

    def feed(self, chunk: bytes) -> None:
        self.buf += chunk
        while self.buf:
            if self.mode == "cmd":
                nl = self.buf.find(b"\r\n")
                if nl < 0:
                    return
                line, self.buf = self.buf[:nl], self.buf[nl + 2:]
                text = line.decode("utf-8", "replace")
                self.tap._event(self.conn, "cmd", text)
                verb = text.split(" ", 1)[0].upper()
                if verb == "DATA":
                    self.mode, self.data = "data", b""
                elif verb == "BDAT":
                    parts = text.split()
                    self.bdat_left = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
                    self.bdat_last = len(parts) > 2 and parts[2].upper() == "LAST"
                    self.mode = "bdat"
            elif self.mode == "data":
                # The DATA reply (354) is not waited for: a relay that streamed content before
                # the next hop's 354 would show here as content, which is what a test must see.
                self.data += self.buf
                self.buf = b""
                end = self.data.find(b"\r\n.\r\n")
                if self.data.startswith(b".\r\n"):
                    end = -2
                if end == -1:
                    return
                cut = end + 5
                raw, self.buf = self.data[:cut], self.data[cut:]
                self.tap._event(self.conn, "message", TapMessage(self.conn, "DATA", raw))
                self.mode, self.data = "cmd", b""
            else:  # bdat
                take = min(self.bdat_left, len(self.buf))
                self.data += self.buf[:take]
                self.buf = self.buf[take:]
                self.bdat_left -= take
                if self.bdat_left:
                    return
                self.mode = "cmd"
                if self.bdat_last:
                    self.tap._event(self.conn, "message", TapMessage(self.conn, "BDAT", self.data))
                    self.data = b""


class Tap:
    """A TCP relay on 127.0.0.1:port -> 127.0.0.1:target that records both directions."""

    def __init__(self, target: int):
        self.target = target
        self.port = free_port()
        self.lock = threading.Lock()
        self.events: list[tuple[int, str, object]] = []
        self.raw_out: dict[int, bytearray] = {}   # relay -> next hop, per connection, since reset
        self.connections = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", self.port))
        self.listener.listen(64)
        self.listener.settimeout(0.2)
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self._threads.append(t)

    def _event(self, conn: int, kind: str, payload) -> None:
        with self.lock:
            self.events.append((conn, kind, payload))

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except (socket.timeout, OSError):
                continue
            with self.lock:
                self.connections += 1
                conn = self.connections
            t = threading.Thread(target=self._pump, args=(conn, client), daemon=True)
            t.start()
            self._threads.append(t)

    def _pump(self, conn: int, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target), timeout=5)
        except OSError:
            client.close()
            return
        stream = _Stream(conn, self)
        sel = selectors.DefaultSelector()
        client.setblocking(False)
        upstream.setblocking(False)
        sel.register(client, selectors.EVENT_READ, upstream)
        sel.register(upstream, selectors.EVENT_READ, client)
        try:
            while not self._stop.is_set():
                for key, _ in sel.select(timeout=0.2):
                    src, dst = key.fileobj, key.data
                    try:
                        data = src.recv(65536)
                    except BlockingIOError:
                        continue
                    except OSError:
                        data = b""
                    if not data:
                        return
                    if src is client:
                        with self.lock:
                            self.raw_out.setdefault(conn, bytearray()).extend(data)
                        stream.feed(data)
                    dst.setblocking(True)
                    dst.settimeout(5)
                    try:
                        dst.sendall(data)
                    except OSError:
                        return
                    finally:
                        dst.setblocking(False)
        finally:
            sel.close()
            client.close()
            upstream.close()

    def reset(self) -> None:
        with self.lock:
            self.events.clear()
            self.raw_out.clear()

    def commands(self) -> list[str]:
        with self.lock:
            return [p for _, k, p in self.events if k == "cmd"]

    def messages(self) -> list[TapMessage]:
        with self.lock:
            return [p for _, k, p in self.events if k == "message"]

    def raw(self) -> bytes:
        with self.lock:
            return b"".join(bytes(v) for v in self.raw_out.values())

    def stop(self) -> None:
        self._stop.set()
        try:
            self.listener.close()
        except OSError:
            pass
        for t in self._threads:
            t.join(timeout=2)


class NextHop:
    """smtp-sink behind a Tap; ``port`` is the tap's (the relay's smarthost)."""

    def __init__(self, workdir: Path):
        self.sink = Sink(workdir)
        self.tap = Tap(self.sink.port)
        self.port = self.tap.port

    # -- the sink
    def files(self):
        return self.sink.files()

    def messages(self):
        return self.sink.messages()

    def wait_for(self, count: int, timeout: float = 5.0):
        return self.sink.wait_for(count, timeout)

    def reset(self) -> None:
        for p in self.sink.dir.iterdir():
            try:
                p.unlink()
            except OSError:
                pass
        self.tap.reset()

    # -- assertions
    def assert_no_message(self, settle: float = 0.05, forbidden: tuple[str, ...] = ()) -> None:
        """No message was committed at the next hop: none in the sink, no end of content in the
        bytes sent to it; `forbidden` strings appear nowhere in those bytes."""
        time.sleep(settle)
        files = self.sink.files()
        assert not files, f"the next hop received mail it should not have: {[p.read_text() for p in files]}"
        tapped = self.tap.messages()
        assert not tapped, f"the relay completed a message at the next hop: {tapped}"
        raw = self.tap.raw()
        for s in forbidden:
            assert s.encode() not in raw, f"{s!r} reached the next hop: {raw!r}"

    def assert_nothing(self, settle: float = 0.05, forbidden: tuple[str, ...] = ()) -> None:
        """Nothing reached the next hop: no message, and no recipient was even named to it nor
        content started (MAIL FROM and RSET may appear: in-line forwarding opens the transaction
        at the next hop when the relay accepts MAIL)."""
        self.assert_no_message(settle, forbidden)
        cmds = self.tap.commands()
        named = [c for c in cmds if c.split(" ", 1)[0].upper() in ("RCPT", "DATA", "BDAT")]
        assert not named, f"the relay named recipients or started content at the next hop: {cmds}"

    def assert_no_transaction(self) -> None:
        """Not even a MAIL FROM reached the next hop (pooled sessions may still say RSET, NOOP,
        QUIT or EHLO on their own)."""
        cmds = self.tap.commands()
        opened = [c for c in cmds if c.split(" ", 1)[0].upper() in ("MAIL", "RCPT", "DATA", "BDAT")]
        assert not opened, f"a transaction was opened at the next hop: {cmds}"

    def assert_one(self, rcpts: list[str], mail_from: str | None = None, content: bytes | None = None,
                   timeout: float = 5.0, transactions: int = 1):
        """Exactly one message reached the next hop, for exactly `rcpts` (and `mail_from`, and
        byte for byte the client's `content` after the relay's Received field), in a stream with
        `transactions` MAIL commands; returns the sink's copy."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.sink.files():
            time.sleep(0.02)
        time.sleep(0.05)  # in-line forwarding: the next hop had the message before the client's 250
        msgs = self.sink.messages()
        assert len(msgs) == 1, f"expected one message at the next hop, got {len(msgs)}: {[m.content for m in msgs]}"
        [m] = msgs
        assert sink_recipients(m) == rcpts, (sink_recipients(m), rcpts)
        if mail_from is not None:
            assert m.mail_from == mail_from, (m.mail_from, mail_from)
        tapped = self.tap.messages()
        assert len(tapped) == 1, f"the tap saw {len(tapped)} messages: {tapped}"
        cmds = self.tap.commands()
        # the recipients named in the transaction that carried the message
        with self.tap.lock:
            events = list(self.tap.events)
        at = next(i for i, e in enumerate(events) if e[1] == "message")
        conn = events[at][0]
        named: list[str] = []
        for c, kind, payload in reversed(events[:at]):
            if c != conn or kind != "cmd":
                continue
            if payload.upper().startswith("MAIL"):
                break
            if payload.upper().startswith("RCPT"):
                named.insert(0, payload)
        assert named == [f"RCPT TO:<{r}>" for r in rcpts], cmds
        assert len([c for c in cmds if c.upper().startswith("MAIL")]) == transactions, cmds
        if content is not None:
            got = strip_trace(tapped[0].content)
            assert got == content, f"content at the next hop differs:\n got {got!r}\nwant {content!r}"
        return m

    def stop(self) -> None:
        self.tap.stop()
        self.sink.stop()


def sink_recipients(m) -> list[str]:
    """The recipients in a sink dump, exactly (relaytest's parser stops at the first '>', which
    a quoted local part may hold)."""
    out = []
    for line in m.path.read_bytes().decode("utf-8", "replace").split("\n"):
        if line.startswith("Received: "):
            break
        if line.startswith("X-Rcpt-Args: "):
            arg = line[len("X-Rcpt-Args: "):].strip()
            if arg.startswith("<") and ">" in arg:
                arg = arg[1:arg.rindex(">")]
            out.append(arg)
    return out


def client_content(m) -> str:
    """A sink message's content without the relay's own Received field (the first field)."""
    lines = m.content.split("\n")
    assert lines and lines[0].startswith("Received:"), m.content
    i = 1
    while i < len(lines) and lines[i][:1] in (" ", "\t"):
        i += 1
    return "\n".join(lines[i:])




# --------------------------------------------------------------------------------------------
# Clients

def session(port: int, source: str = OFF_LIST, ehlo: bool = True, nodelay: bool = True,
            timeout: float = 5.0) -> RawSMTP:
    """A raw client after the 220 greeting (and EHLO), with Nagle off so one send is one packet."""
    c = RawSMTP(port, source=source, timeout=timeout)
    if nodelay:
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    g = c.greeting()
    assert g.code == 220, str(g)
    if ehlo:
        e = c.ehlo()
        assert e.code == 250, str(e)
    return c


def replies(c: RawSMTP, n: int, timeout: float = 5.0) -> list[str]:
    """Exactly the next `n` replies' statuses ('250 2.1.0', '354')."""
    return [c.reply(timeout).status for _ in range(n)]


def read_all(c: RawSMTP, timeout: float = 2.0, total: float = 8.0) -> list[str]:
    """Every reply until the relay closes the connection ('<closed>' last) or stays silent for
    `timeout` seconds ('<silent>' last). Bounded by `total` seconds."""
    out: list[str] = []
    deadline = time.monotonic() + total
    while time.monotonic() < deadline:
        try:
            out.append(c.reply(min(timeout, max(0.05, deadline - time.monotonic()))).status)
        except ConnectionClosed:
            out.append("<closed>")
            return out
        except TimeoutError:
            out.append("<silent>")
            return out
    out.append("<silent>")
    return out


def unstuff(data: bytes) -> bytes:
    """DATA content as the receiver takes it: each line's leading dot removed (RFC 5321 4.5.2)."""
    lines = data.split(b"\r\n")
    return b"\r\n".join(l[1:] if l.startswith(b".") else l for l in lines)


def strip_trace(content: bytes) -> bytes:
    """Content without the relay's own Received field (its first header field)."""
    assert content.startswith(b"Received:"), content[:200]
    lines = content.split(b"\r\n")
    i = 1
    while i < len(lines) and lines[i][:1] in (b" ", b"\t"):
        i += 1
    return b"\r\n".join(lines[i:])
