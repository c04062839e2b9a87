"""A second kuberelay-relay as the next hop (drop-directory mode), reached with STARTTLS per
forwarding.tls (issue "Relay forwarding"): Opportunistic encrypts to a self-signed next hop,
Required refuses one whose certificate the system does not trust (4xx: the client keeps the
message), and what the client was told matches what the second relay wrote to disk. With a
private CA (forwarding.caSecretName), Required verifies the next hop's certificate and name;
credentialsSecretName logs in at the next hop over that TLS."""

import subprocess
import types
from pathlib import Path

import pytest
import yaml

from relaytest import RawSMTP, message

REPO = Path(__file__).resolve().parents[2]
TLS_SECRET = REPO / "examples" / "003-anonymous-relay-ip-restricted" / "secret-tls.yaml"


def add_tls(files):
    """The quickstart connector, offering STARTTLS with the examples' test certificate."""
    files["secret-tls.yaml"] = list(yaml.safe_load_all(TLS_SECRET.read_text()))
    for docs in files.values():
        for d in docs:
            if d.get("kind") == "ReceiveConnector":
                d["spec"]["authMechanisms"] = ["Tls"]
                d["spec"]["tls"] = {"secretName": "relay-tls"}


def chain(relay, tls_mode):
    last_hop = relay("quickstart", edit=add_tls)
    first_hop = relay("003-anonymous-relay-ip-restricted",
                      types.SimpleNamespace(port=last_hop.port(2525)),
                      connectors={"anonymous-relay": {"forwarding": {"tls": tls_mode}}})
    return first_hop, last_hop


def send(first_hop, test_id):
    with RawSMTP(first_hop.port(2525), source="127.0.0.17") as c:
        assert c.greeting().code == 220
        c.ehlo()
        return c.send_message("app@example.com", ["someone@customer.test"], message(test_id=test_id))


def test_opportunistic_tls_to_a_second_relay_in_drop_directory_mode(relay):
    first_hop, last_hop = chain(relay, "Opportunistic")
    replies = send(first_hop, "chain")
    assert [r.code for r in replies] == [250, 250, 354, 250]
    assert replies[-1].status == "250 2.6.0"  # the last hop's own reply, relayed
    [f] = last_hop.drop_files()
    text = f.read_bytes()
    assert b"X-Test-Id: chain" in text
    # The last hop's Received header: the first hop came in over TLS.
    assert b"with ESMTPS" in text.split(b"\r\n\r\n")[0]
    assert b"by relay.test (KubeRelay, connector default/anonymous-relay)" in text


def test_required_tls_refuses_an_untrusted_next_hop_temporarily(relay):
    first_hop, last_hop = chain(relay, "Required")
    replies = send(first_hop, "untrusted")
    assert replies[0].code == 451  # MAIL FROM: the next hop could not be reached safely
    assert last_hop.drop_files() == []


# --------------------------------------------------------------------------------------------
# Required TLS against a configured CA (forwarding.caSecretName), and AUTH to the next hop.

def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A private CA, a next-hop certificate it signed for 127.0.0.1, one for another name, and
    an unrelated CA: what an administrator's internal PKI looks like."""
    d = tmp_path_factory.mktemp("pki")
    for ca in ("ca", "other-ca"):
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                 "-keyout", f"{ca}.key", "-out", f"{ca}.crt", "-days", "2", "-subj", f"/CN=KubeRelay test {ca}",
                 "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign",
                 cwd=d)
    for leaf, san in (("hop", "IP:127.0.0.1"), ("wrong-name", "DNS:other.test")):
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                 "-keyout", f"{leaf}.key", "-out", f"{leaf}.csr", "-subj", f"/CN={leaf}", cwd=d)
        (d / f"{leaf}.ext").write_text(f"subjectAltName={san}\nextendedKeyUsage=serverAuth\n")
        _openssl("x509", "-req", "-in", f"{leaf}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-days", "2", "-extfile", f"{leaf}.ext", "-out", f"{leaf}.crt", cwd=d)
    return {p.name: p.read_text() for p in d.iterdir() if p.suffix in (".crt", ".key")}


def tls_secret(pki, leaf):
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": "relay-tls"},
            "stringData": {"tls.crt": pki[f"{leaf}.crt"], "tls.key": pki[f"{leaf}.key"]}}


def ca_secret(pem):
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "next-hop-ca"},
            "stringData": {"ca.crt": pem}}


def credentials(user, password):
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "next-hop-credentials"},
            "stringData": {"username": user, "password": password}}


def pki_last_hop(relay, pki, leaf, example="quickstart"):
    """The last hop writes to its drop directory and presents the `leaf` certificate."""
    def edit(files):
        if example == "quickstart":
            add_tls(files)
        files["secret-tls.yaml"] = [tls_secret(pki, leaf)]
        for docs in files.values():
            for d in docs:
                if d.get("kind") == "ReceiveConnector":
                    d["spec"]["forwarding"].pop("smarthosts", None)
                    d["spec"]["forwarding"].pop("tls", None)
    return relay(example, all_connectors={"forwarding": {"dropDirectory": "/rewritten-by-the-fixture"}},
                 edit=edit)


def pki_first_hop(relay, last_hop, port, forwarding, secrets):
    return relay("003-anonymous-relay-ip-restricted", types.SimpleNamespace(port=last_hop.port(port)),
                 connectors={"anonymous-relay": {"forwarding": forwarding}},
                 extra_files={"next-hop-secrets.yaml": secrets})


def test_required_tls_trusts_the_configured_ca(relay, pki):
    last_hop = pki_last_hop(relay, pki, "hop")
    first_hop = pki_first_hop(relay, last_hop, 2525, {"tls": "Required", "caSecretName": "next-hop-ca"},
                              [ca_secret(pki["ca.crt"])])
    replies = send(first_hop, "private-ca")
    assert [r.status for r in replies] == ["250 2.1.0", "250 2.1.5", "354", "250 2.6.0"]
    [f] = last_hop.drop_files()
    assert b"X-Test-Id: private-ca" in f.read_bytes()
    assert b"with ESMTPS" in f.read_bytes().split(b"\r\n\r\n")[0]


@pytest.mark.parametrize("case", ["no CA configured", "another CA", "certificate for another name"])
def test_required_tls_refuses_a_next_hop_it_cannot_verify(relay, pki, case):
    leaf = "wrong-name" if case == "certificate for another name" else "hop"
    forwarding = {"tls": "Required"}
    secrets = []
    if case != "no CA configured":
        forwarding["caSecretName"] = "next-hop-ca"
        secrets = [ca_secret(pki["other-ca.crt" if case == "another CA" else "ca.crt"])]
    last_hop = pki_last_hop(relay, pki, leaf)
    first_hop = pki_first_hop(relay, last_hop, 2525, forwarding, secrets or [credentials("unused", "unused")])
    replies = send(first_hop, "unverified")
    assert replies[0].status == "451 4.7.5"  # temporary: the client keeps the message
    assert last_hop.drop_files() == []
    assert first_hop.metric("kuberelay_forward_errors_total", kind="tls") >= 1


def test_opportunistic_tls_does_not_need_trust(relay, pki):
    last_hop = pki_last_hop(relay, pki, "wrong-name")
    first_hop = pki_first_hop(relay, last_hop, 2525, {"tls": "Opportunistic"}, [credentials("unused", "unused")])
    assert send(first_hop, "opportunistic")[-1].status == "250 2.6.0"
    assert len(last_hop.drop_files()) == 1


def test_auth_to_the_next_hop_over_verified_tls(relay, pki):
    """The last hop is seed 001's submission connector (BasicAuthRequireTLS, ExchangeUsers); the
    first hop logs in as mail.express@example.com, and its pooled session carries the second
    message without a second STARTTLS and AUTH."""
    last_hop = pki_last_hop(relay, pki, "hop", example="001-authenticated-submission")
    first_hop = pki_first_hop(
        relay, last_hop, 2587,
        {"tls": "Required", "caSecretName": "next-hop-ca", "credentialsSecretName": "next-hop-credentials"},
        [ca_secret(pki["ca.crt"]), credentials("mail.express@example.com", "MailExpress-Pass-001")])
    for i in range(2):
        assert send(first_hop, f"auth-{i}")[-1].code == 250
    files = last_hop.drop_files()
    assert len(files) == 2
    for f in files:
        head = f.read_bytes().split(b"\r\n\r\n")[0]
        assert b"with ESMTPSA" in head  # the last hop saw TLS and AUTH
    assert last_hop.metric("kuberelay_auth_decisions_total", result="success") == 1
    assert first_hop.metric("kuberelay_upstream_transactions_total", connection="reused") == 1


def test_refused_credentials_at_the_next_hop_are_temporary(relay, pki):
    last_hop = pki_last_hop(relay, pki, "hop", example="001-authenticated-submission")
    first_hop = pki_first_hop(
        relay, last_hop, 2587,
        {"tls": "Required", "caSecretName": "next-hop-ca", "credentialsSecretName": "next-hop-credentials"},
        [ca_secret(pki["ca.crt"]), credentials("mail.express@example.com", "wrong-password")])
    replies = send(first_hop, "bad-credentials")
    assert replies[0].status == "451 4.7.0"
    assert last_hop.drop_files() == []
    assert first_hop.metric("kuberelay_forward_errors_total", kind="auth") >= 1
