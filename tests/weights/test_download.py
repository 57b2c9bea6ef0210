"""Downloads against a local HTTP server: full, resumed, hash mismatch, cache hit without network."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from snl_video.weights.download import default_cache_dir, download_weights
from snl_video.weights.errors import DownloadError, HashMismatchError
from snl_video.weights.registry import get_weights

PAYLOAD = os.urandom(3 * 1024 * 1024 + 123)
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Server:
    def __init__(self, *, honour_range: bool = True) -> None:
        self.requests: list[dict[str, str]] = []
        self.honour_range = honour_range
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_GET(self):
                server.requests.append(dict(self.headers))
                if self.path != "/files/model.pth":
                    self.send_error(404)
                    return
                start = 0
                rng = self.headers.get("Range")
                if rng and server.honour_range:
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    if start >= len(PAYLOAD):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(PAYLOAD)}")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
                else:
                    self.send_response(200)
                body = PAYLOAD[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/files/model.pth"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.close()


def _entry(url: str | None, sha: str | None):
    # A registry entry pointed at the local server (file_name must match the URL's last part).
    return dataclasses.replace(get_weights("r3d_18.torchvision_k400"), url=url, sha256=sha, file_name="model.pth")


@pytest.mark.parametrize("sha", [SHA, SHA[:8]], ids=["full-digest", "prefix"])
def test_full_download_verifies_and_renames(tmp_path, server, sha):
    path = download_weights(_entry(server.url, sha), cache_dir=tmp_path, progress=False)
    assert path == tmp_path / "model.pth" and path.read_bytes() == PAYLOAD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pth"]
    assert len(server.requests) == 1 and "Range" not in server.requests[0]


def test_resume_from_a_partial_file_uses_a_range_request(tmp_path, server):
    (tmp_path / "model.pth.part").write_bytes(PAYLOAD[:1_000_000])
    path = download_weights(_entry(server.url, SHA), cache_dir=tmp_path, progress=False)
    assert path.read_bytes() == PAYLOAD
    assert server.requests[-1].get("Range") == "bytes=1000000-"
    assert not (tmp_path / "model.pth.part").exists()


def test_server_ignoring_range_restarts_from_scratch(tmp_path):
    s = _Server(honour_range=False)
    try:
        (tmp_path / "model.pth.part").write_bytes(b"garbage" * 1000)
        path = download_weights(_entry(s.url, SHA), cache_dir=tmp_path, progress=False)
        assert path.read_bytes() == PAYLOAD and s.requests[0].get("Range") == "bytes=7000-"
    finally:
        s.close()


def test_oversized_partial_file_is_restarted_after_416(tmp_path, server):
    (tmp_path / "model.pth.part").write_bytes(PAYLOAD + b"extra")
    path = download_weights(_entry(server.url, SHA), cache_dir=tmp_path, progress=False)
    assert path.read_bytes() == PAYLOAD and len(server.requests) == 2


def test_hash_mismatch_deletes_the_partial_and_names_both_digests(tmp_path, server):
    wrong = "0" * 64
    with pytest.raises(HashMismatchError) as info:
        download_weights(_entry(server.url, wrong), cache_dir=tmp_path, progress=False)
    assert wrong in str(info.value) and SHA in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_corrupt_partial_file_is_caught_by_the_hash(tmp_path, server):
    (tmp_path / "model.pth.part").write_bytes(b"\0" * 1000)  # not a prefix of the real file
    with pytest.raises(HashMismatchError):
        download_weights(_entry(server.url, SHA), cache_dir=tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []
    # The next attempt starts clean and succeeds.
    assert download_weights(_entry(server.url, SHA), cache_dir=tmp_path, progress=False).read_bytes() == PAYLOAD


def test_cache_hit_uses_no_network(tmp_path, server):
    (tmp_path / "model.pth").write_bytes(PAYLOAD)
    path = download_weights(_entry(server.url, SHA), cache_dir=tmp_path, progress=False)
    assert path.read_bytes() == PAYLOAD and server.requests == []
    # The offline path works even with an unreachable URL or none at all.
    assert download_weights(_entry("http://127.0.0.1:9/nowhere/model.pth", SHA), cache_dir=tmp_path) == path
    assert download_weights(_entry(None, None), cache_dir=tmp_path) == path


def test_cached_file_with_wrong_hash_is_reported_and_kept(tmp_path, server):
    (tmp_path / "model.pth").write_bytes(b"not the model")
    with pytest.raises(HashMismatchError, match="delete it"):
        download_weights(_entry(server.url, SHA), cache_dir=tmp_path, progress=False)
    assert (tmp_path / "model.pth").exists() and server.requests == []


def test_no_url_explains_the_offline_path(tmp_path):
    with pytest.raises(DownloadError) as info:
        download_weights("r3d50.hara2017_k400", cache_dir=tmp_path)
    msg = str(info.value)
    assert "resnet-50-kinetics.pth" in msg and str(tmp_path) in msg and "Google Drive" in msg


def test_http_error_is_a_download_error(tmp_path, server):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_weights(_entry(server.url.replace("model.pth", "missing.pth"), SHA), cache_dir=tmp_path, progress=False)


def test_cache_dir_comes_from_the_environment(tmp_path, monkeypatch, server):
    monkeypatch.setenv("SNL_VIDEO_CACHE", str(tmp_path / "cache"))
    assert default_cache_dir() == tmp_path / "cache"
    path = download_weights(_entry(server.url, SHA), progress=False)
    assert path == tmp_path / "cache" / "model.pth"
    monkeypatch.delenv("SNL_VIDEO_CACHE")
    assert str(default_cache_dir()).endswith(os.path.join(".cache", "snl_video", "weights"))
