"""Fixtures of the adversarial tier.

tests/integration's fixtures ``relay``, ``sink`` and ``sink_factory`` (and its check that the
relay binary exists) are imported from its conftest.py and used as they are; the helpers are
its relaytest.py and this tier's advtest.py. Added here:

* ``module_relay(example, **Relay kwargs) -> (relay, next_hop)``: a relay shared by every test of
  a module (a table of hostile inputs is hundreds of sessions against one policy), whose next
  hop is a ``NextHop`` (smtp-sink behind a byte-recording tap). Before each test the next hop's
  records are cleared; after each test every module relay must still be alive.
* ``next_hop``: a function-scoped NextHop, for tests that start their own ``relay``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from advtest import INTEGRATION, NextHop
from relaytest import Relay

_spec = importlib.util.spec_from_file_location("kuberelay_integration_conftest", INTEGRATION / "conftest.py")
_integration = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_integration)
relay = _integration.relay
sink = _integration.sink
sink_factory = _integration.sink_factory
_relay_binary_present = _integration._relay_binary_present


class _ModuleRelays:
    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.entries: list[tuple[Relay, NextHop | None]] = []

    def start(self, example: str, next_hop: bool = True, **kwargs) -> tuple[Relay, NextHop | None]:
        hop = NextHop(self.workdir) if next_hop else None
        try:
            r = Relay(example, self.workdir, hop, **kwargs)
        except Exception:
            if hop:
                hop.stop()
            raise
        self.entries.append((r, hop))
        return r, hop

    def reset(self) -> None:
        for _, hop in self.entries:
            if hop:
                hop.reset()

    def check_alive(self) -> None:
        for r, _ in self.entries:
            if not r.alive():
                pytest.fail(f"the relay ({r.example}) died with status {r.proc.returncode}:\n{r.log()[-4000:]}",
                            pytrace=False)

    def stop(self) -> None:
        for r, hop in self.entries:
            r.stop()
            if hop:
                hop.stop()


_module_relays: dict[str, _ModuleRelays] = {}


@pytest.fixture(scope="module")
def module_relay(request, tmp_path_factory):
    relays = _ModuleRelays(tmp_path_factory.mktemp("adversarial"))
    _module_relays[request.module.__name__] = relays
    yield relays.start
    _module_relays.pop(request.module.__name__, None)
    relays.stop()


@pytest.fixture(autouse=True)
def _fresh_next_hop(request):
    relays = _module_relays.get(request.module.__name__)
    if relays:
        relays.reset()
    yield
    relays = _module_relays.get(request.module.__name__)
    if relays:
        relays.check_alive()


@pytest.fixture
def next_hop(tmp_path):
    hop = NextHop(tmp_path)
    yield hop
    hop.stop()
