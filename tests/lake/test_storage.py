"""ObjectStore on a local folder and on a real S3 server (SeaweedFS), same tests for both."""

from __future__ import annotations

import hashlib
import http.client
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from covidct.lake.backends import LocalStore, S3Store, open_store, s3_client
from covidct.lake.storage import ObjectStore, check_key

BACKENDS = ["local", pytest.param("s3", marks=pytest.mark.s3)]


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "local":
        return open_store((tmp_path / "lake").as_uri())
    return request.getfixturevalue("s3_store")


def _fill(store: ObjectStore, prefix: str, n: int) -> dict[str, bytes]:
    objects = {f"{prefix}/p{i // 100}/IM{i:05d}.tif": f"slice {i}".encode() for i in range(n)}
    from covidct.lake.storage import _parallel

    _parallel(lambda item: store.write_bytes(*item), objects.items())
    return objects


def test_round_trip_and_missing_key(store: ObjectStore) -> None:
    store.write_bytes("landing/b1/a.bin", b"\x00\x01binary")
    assert store.read_bytes("landing/b1/a.bin") == b"\x00\x01binary"
    assert store.exists("landing/b1/a.bin")
    assert not store.exists("landing/b1/b.bin")
    store.write_bytes("landing/b1/a.bin", b"replaced")
    assert store.read_bytes("landing/b1/a.bin") == b"replaced"
    store.delete("landing/b1/a.bin")
    assert not store.exists("landing/b1/a.bin")
    with pytest.raises(FileNotFoundError, match="landing/b1/a.bin"):
        store.read_bytes("landing/b1/a.bin")


def test_list_paginates_past_1000_keys(store: ObjectStore) -> None:
    objects = _fill(store, "landing/big", 1_234)
    _fill(store, "landing/bigger", 3)  # shares the string prefix, not the folder
    assert store.list("landing/big/") == sorted(objects)
    assert len(store.list("landing/big")) == 1_237
    assert store.list_dirs("landing") == ["big", "bigger"]
    assert store.list_dirs("landing/big")[:2] == ["p0", "p1"]
    assert len(store.fingerprints("landing/big")) == 1_234


def test_upload_download_are_byte_identical(store: ObjectStore, tmp_path: Path) -> None:
    source = tmp_path / "src"
    files = {"Patient_details.csv": b"a,b\n", "patient1/SR_2/IM00001.tif": bytes(range(256)) * 9}
    for relative, data in files.items():
        (source / relative).parent.mkdir(parents=True, exist_ok=True)
        (source / relative).write_bytes(data)
    hashes = store.upload_dir(source, "landing/b1")
    assert hashes == {k: hashlib.sha256(v).hexdigest() for k, v in files.items()}
    target = store.download_prefix("landing/b1", tmp_path / "dst")
    assert {
        p.relative_to(target).as_posix(): p.read_bytes() for p in target.rglob("*") if p.is_file()
    } == files


def test_copy_prefix_verifies_and_refuses_to_clobber(store: ObjectStore) -> None:
    objects = _fill(store, "landing/b1", 5)
    copied = store.copy_prefix("landing/b1", "curated/b1")
    assert copied == {
        k.removeprefix("landing/b1/"): hashlib.sha256(v).hexdigest() for k, v in objects.items()
    }
    assert store.copy_prefix("landing/b1", "curated/b1") == copied  # retry: no-op
    store.write_bytes("curated/b1/p0/IM00000.tif", b"someone else's bytes")
    with pytest.raises(FileExistsError, match="curated/b1/p0/IM00000.tif"):
        store.copy_prefix("landing/b1", "curated/b1")
    assert store.read_bytes("curated/b1/p0/IM00000.tif") == b"someone else's bytes"
    with pytest.raises(ValueError, match="overlapping"):
        store.copy_prefix("landing/b1", "landing/b1/sub")


def test_move_prefix_moves_every_byte(store: ObjectStore) -> None:
    objects = _fill(store, "landing/b2", 7)
    store.write_bytes("landing/b20/keep.bin", b"neighbour")
    moved = store.move_prefix("landing/b2", "quarantine/b2")
    assert store.list("landing/b2/") == []
    assert store.read_bytes("landing/b20/keep.bin") == b"neighbour"
    for key, data in objects.items():
        relative = key.removeprefix("landing/b2/")
        assert store.read_bytes(f"quarantine/b2/{relative}") == data
        assert moved[relative] == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(
    ("uri", "kind", "expected_uri"),
    [
        ("file:///tmp/lake", LocalStore, "file:///tmp/lake/landing/x"),
        ("s3://bucket/root/dir", S3Store, "s3://bucket/root/dir/landing/x"),
        ("s3://bucket", S3Store, "s3://bucket/landing/x"),
    ],
)
def test_open_store_parses_uris(uri: str, kind: type, expected_uri: str) -> None:
    store = open_store(uri, endpoint_url="http://127.0.0.1:1")
    assert isinstance(store, kind)
    assert store.uri("landing/x") == expected_uri


@pytest.mark.parametrize("uri", ["gs://bucket/x", "/tmp/lake", "http://host/x"])
def test_open_store_rejects_other_schemes(uri: str) -> None:
    with pytest.raises(ValueError, match="valid schemes: file://, s3://"):
        open_store(uri)


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", "a/./b", "a\\b"])
def test_invalid_keys_are_refused(key: str) -> None:
    with pytest.raises(ValueError, match="invalid object key"):
        check_key(key)


# ---------------------------------------------------------------- retries through a flaky proxy


class _FlakyProxy(BaseHTTPRequestHandler):
    """Answers 503 SlowDown to the first ``failures`` requests, then forwards to ``upstream``."""

    upstream: tuple[str, int]
    failures: int
    protocol_version = "HTTP/1.1"  # so "Expect: 100-continue" is answered at once
    served_errors = 0
    lock = threading.Lock()

    def log_message(self, *args: object) -> None:
        pass

    def _handle(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.lock:
            fail = type(self).served_errors < self.failures
            if fail:
                type(self).served_errors += 1
        if fail:
            error = b"<Error><Code>SlowDown</Code><Message>try later</Message></Error>"
            self._reply(503, [("Content-Type", "application/xml")], error)
            return
        connection = http.client.HTTPConnection(*self.upstream, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "expect"}
        connection.request(self.command, self.path, body, headers)
        response = connection.getresponse()
        skip = {"transfer-encoding", "connection", "content-length"}
        reply_headers = [(k, v) for k, v in response.getheaders() if k.lower() not in skip]
        self._reply(response.status, reply_headers, response.read())
        connection.close()

    def _reply(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_PUT = do_HEAD = do_POST = do_DELETE = _handle


@pytest.fixture
def flaky_endpoint(s3_server) -> Iterator[type[_FlakyProxy]]:  # noqa: ANN001
    host, port = s3_server.endpoint_url.removeprefix("http://").split(":")
    handler = type("Flaky", (_FlakyProxy,), {"upstream": (host, int(port)), "failures": 2})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    handler.endpoint_url = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    yield handler
    server.shutdown()
    server.server_close()


@pytest.mark.s3
@pytest.mark.parametrize(("max_attempts", "survives"), [(3, True), (2, False)])
def test_transient_errors_are_retried(
    flaky_endpoint: type[_FlakyProxy],
    s3_server,
    max_attempts: int,
    survives: bool,  # noqa: ANN001
) -> None:
    client = s3_client(
        endpoint_url=flaky_endpoint.endpoint_url,  # type: ignore[attr-defined]
        session=s3_server.session(),
        max_attempts=max_attempts,
    )
    store = open_store(f"s3://{s3_server.bucket}/flaky-{max_attempts}", client=client)
    if survives:
        store.write_bytes("x.bin", b"kept")
        assert flaky_endpoint.served_errors == 2
        assert store.read_bytes("x.bin") == b"kept"
    else:
        from botocore.exceptions import ClientError

        with pytest.raises(ClientError, match="SlowDown"):
            store.write_bytes("x.bin", b"lost")
