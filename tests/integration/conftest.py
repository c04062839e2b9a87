"""Fixtures for the relay integration tests (helpers live in relaytest.py).

* ``relay(example, sink=..., connectors={name: spec-patch}, all_connectors=spec-patch, edit=fn)``
  copies ``examples/<example>/*.yaml`` to a temporary directory, maps every binding port to a
  free port (2525/2587/2465 consistently: ``r.port(2525)``, ``r.ports``), points smarthosts at the
  sink (or at a port nobody listens on when ``sink=None``) and dropDirectory at a temporary
  directory, applies the spec patches, starts ``$KUBERELAY_RELAY`` in local mode and waits (10 s
  at most) for /readyz 200 and every listening port. Unless ``fast=False`` the tarpits are set to
  0s so that 5xx replies come at once (the tarpit tests set them explicitly). The relay is always
  stopped by PID (SIGTERM, bounded wait, SIGKILL); a relay that died during the test fails it.
* ``sink`` is a started smtp-sink on a free 127.0.0.1 port that dumps every transaction;
  ``sink_factory(reject_hard="RCPT", reject_soft="MAIL", disconnect_421="DATA", data_delay=N)``
  makes failing ones.
"""

from __future__ import annotations

import pytest

import relaytest
from relaytest import Relay, Sink


@pytest.fixture(scope="session", autouse=True)
def _relay_binary_present():
    # Fails (never skips) every test when the binary is missing.
    relaytest.relay_binary()


@pytest.fixture
def sink_factory(tmp_path):
    sinks: list[Sink] = []

    def make(**kwargs) -> Sink:
        s = Sink(tmp_path, **kwargs)
        sinks.append(s)
        return s

    yield make
    for s in sinks:
        s.stop()


@pytest.fixture
def sink(sink_factory) -> Sink:
    return sink_factory()


@pytest.fixture
def relay(tmp_path, request):
    relays: list[Relay] = []

    def start(example: str, sink: Sink | None = None, **kwargs) -> Relay:
        r = Relay(example, tmp_path, sink, **kwargs)
        relays.append(r)
        return r

    yield start
    died = []
    for r in relays:
        if not r.alive() and r.proc.returncode != 0:
            died.append((r, r.proc.returncode))
        r.stop()
    if died:
        r, code = died[0]
        pytest.fail(f"the relay ({r.example}) died during the test with status {code}:\n{r.log()[-4000:]}",
                    pytrace=False)
