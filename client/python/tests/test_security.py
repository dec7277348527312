"""The Python client against a server with TLS, mTLS and bearer tokens
(certificates made here with openssl, never committed)."""

import json
import subprocess

import grpc
import pytest

import m3serve
from conftest import ServerProcess
from m3serve.torch import M3ITDataLoader, M3ITDataset, collate

TRAINER_TOKEN = "trainer-token-0123456789abcdef"
NARROW_TOKEN = "narrow-token-0123456789abcdef"
NARROW_LICENSE = "CC-BY-4.0"  # SPDX id; the tokens file uses one of the paper's spellings


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    script = """
set -e
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj '/CN=m3serve test CA'
openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj '/CN=localhost'
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > san.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile san.ext
openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj '/CN=trainer'
openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 2
openssl req -x509 -newkey rsa:2048 -nodes -keyout other.key -out other.pem -days 2 -subj '/CN=other CA'
"""
    subprocess.run(["/bin/sh", "-c", script], cwd=d, check=True, capture_output=True)
    (d / "tokens.json").write_text(json.dumps({"tokens": [
        {"token": TRAINER_TOKEN, "identity": "trainer"},
        {"token": NARROW_TOKEN, "identity": "narrow", "allowed_licenses": ["CC By 4.0"]},
    ]}))
    return d


@pytest.fixture(scope="module")
def secure_server(store, pki, tmp_path_factory):
    s = ServerProcess(store, tmp_path_factory.mktemp("secure"),
                      "--tls-cert", pki / "server.pem", "--tls-key", pki / "server.key",
                      "--tls-client-ca", pki / "ca.pem", "--tokens", pki / "tokens.json").start()
    yield s
    s.kill()


def tls(pki, **kw):
    # Calls that must succeed retry a failed connection as a client with the
    # defaults does (a TLS handshake with a loaded, sanitized server on 2 cores
    # can fail once); refusals (UNAUTHENTICATED, PERMISSION_DENIED) are never
    # retried. The tests that expect a refused connection build their clients
    # with 2 attempts themselves.
    return dict(tls_ca=str(pki / "ca.pem"), tls_cert=str(pki / "client.pem"), tls_key=str(pki / "client.key"),
                max_attempts=8, initial_backoff=0.05, timeout=10, **kw)


def test_mtls_and_token_stream_everything_the_plain_server_has(secure_server, server, pki):
    with m3serve.Client(secure_server.target, token=TRAINER_TOKEN, **tls(pki)) as c:
        catalog = c.catalog()
        ids = [x.id for b in c.stream(tasks=["vqa-v2"], images="encoded") for x in b.instances]
    plain = m3serve.Client(server.target)
    assert catalog.total_instances == plain.catalog().total_instances
    assert ids == [x.id for b in plain.stream(tasks=["vqa-v2"], images="encoded") for x in b.instances]
    assert ids


def test_plaintext_client_is_refused(secure_server):
    c = m3serve.Client(secure_server.target, token=TRAINER_TOKEN, max_attempts=2, initial_backoff=0.05, timeout=5)
    with pytest.raises(m3serve.M3ServeError) as e:
        c.catalog()
    assert e.value.code == grpc.StatusCode.UNAVAILABLE


def test_client_without_certificate_is_refused(secure_server, pki):
    c = m3serve.Client(secure_server.target, token=TRAINER_TOKEN, tls_ca=str(pki / "ca.pem"),
                       max_attempts=2, initial_backoff=0.05, timeout=5)
    with pytest.raises(m3serve.M3ServeError) as e:
        c.catalog()
    assert e.value.code == grpc.StatusCode.UNAVAILABLE


def test_server_signed_by_another_ca_is_not_trusted(secure_server, pki):
    c = m3serve.Client(secure_server.target, token=TRAINER_TOKEN, tls_ca=str(pki / "other.pem"),
                       tls_cert=str(pki / "client.pem"), tls_key=str(pki / "client.key"),
                       max_attempts=2, initial_backoff=0.05, timeout=5)
    with pytest.raises(m3serve.M3ServeError) as e:
        c.catalog()
    assert e.value.code == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("token", [None, "not-a-token"])
def test_missing_or_unknown_token_is_unauthenticated(secure_server, pki, token):
    with m3serve.Client(secure_server.target, token=token, **tls(pki)) as c:
        with pytest.raises(m3serve.M3ServeError) as e:
            c.catalog()
        assert e.value.code == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(m3serve.M3ServeError) as e:
            next(iter(c.stream(tasks=["vqa-v2"])))
        assert e.value.code == grpc.StatusCode.UNAUTHENTICATED


def test_entitlement_narrows_catalog_and_denies_other_licenses(secure_server, pki):
    with m3serve.Client(secure_server.target, token=TRAINER_TOKEN, **tls(pki)) as c:
        tasks = c.catalog().tasks
    other = sorted(t.name for t in tasks if t.license != NARROW_LICENSE)
    mine = sorted(t.name for t in tasks if t.license == NARROW_LICENSE)
    assert other and mine, "the sample needs tasks of both kinds"
    with m3serve.Client(secure_server.target, token=NARROW_TOKEN, **tls(pki)) as c:
        assert sorted(t.name for t in c.catalog().tasks) == mine
        with pytest.raises(m3serve.M3ServeError) as e:
            next(iter(c.stream(tasks=[other[0]])))
        assert e.value.code == grpc.StatusCode.PERMISSION_DENIED
        assert "narrow" in e.value.details
        served = {x.license for b in c.stream(images="none") for x in b.instances}
        assert served == {NARROW_LICENSE}
        # Mixtures: a component beyond the entitlement is refused, naming the field;
        # '*' and temperature mixtures draw only from what the identity may read.
        for call in (c.plan, lambda **kw: next(iter(c.stream(**kw)))):
            with pytest.raises(m3serve.M3ServeError) as e:
                call(weights={mine[0]: 1, other[0]: 1})
            assert e.value.code == grpc.StatusCode.PERMISSION_DENIED
            assert "mixture.components[" in e.value.details and "narrow" in e.value.details
        plan = c.plan(temperature=1.0)
        assert sorted(x.key for x in plan.components) == mine
        mixed = {x.license for b in c.stream(images="none", weights={"*": 1}) for x in b.instances}
        assert mixed == {NARROW_LICENSE}


def test_torch_dataset_workers_connect_with_tls_and_token(secure_server, pki):
    options = tls(pki, token=TRAINER_TOKEN)
    ds = M3ITDataset(secure_server.target, tasks=["vqa-v2"], images="decoded", size=(16, 16), max_images=1,
                     drop_remainder=False, rank=0, world_size=1, client_options=options)
    loader = M3ITDataLoader(ds, batch_size=4, num_workers=2, collate_fn=collate)
    seen = [i for batch in loader for i in batch["id"]]
    with m3serve.Client(secure_server.target, **options) as c:
        expected = c.count(tasks=["vqa-v2"]).total
    assert len(seen) == len(set(seen)) == expected
