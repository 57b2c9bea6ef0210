"""Dataset downloads against a local HTTP server: interrupted transfers resume, checks, RAR/ZIP extraction.

The RAR archives are written by the test itself (RAR 4 "stored" entries, built byte by byte
from the format: marker, archive header, file headers with CRC32, end block), so the
extraction is checked on real RAR containers without the proprietary `rar` tool.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import struct
import sys
import threading
import zipfile
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from snl_video.cli import main
from snl_video.data.download import DATASET_ARCHIVES, DatasetDownloadError, download_dataset, extract_archive


def _block(head_type: int, flags: int, body: bytes, data: bytes = b"") -> bytes:
    header = struct.pack("<BHH", head_type, flags, 7 + len(body)) + body
    return struct.pack("<H", zlib.crc32(header) & 0xFFFF) + header + data


def make_rar(files: dict[str, bytes]) -> bytes:
    """A RAR 4 archive holding ``files`` uncompressed (method 0x30 "store"), Unix host."""
    out = b"Rar!\x1a\x07\x00" + _block(0x73, 0, struct.pack("<HI", 0, 0))
    for name, data in files.items():
        encoded = name.encode()
        body = struct.pack("<IIBIIBBHI", len(data), len(data), 3, zlib.crc32(data), 0x5A2E0000, 20, 0x30,
                           len(encoded), 0o100644) + encoded
        out += _block(0x74, 0x8000, body, data)  # 0x8000: a data area follows the header
    return out + _block(0x7B, 0x4000, b"")


def make_zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buffer.getvalue()


class Server:
    """Serves ``files`` with Range support; ``cut[name] = n`` makes the next GET of ``name``
    announce the full length but send only ``n`` bytes and close (a dropped connection)."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.cut: dict[str, int] = {}
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                name = self.path.rsplit("/", 1)[-1]
                rng = self.headers.get("Range")
                server.requests.append((name, rng))
                if name not in server.files:
                    self.send_error(404)
                    return
                payload = server.files[name]
                start = int(rng.removeprefix("bytes=").split("-")[0]) if rng else 0
                if start >= len(payload) and rng:
                    self.send_response(416)
                    self.end_headers()
                    return
                self.send_response(206 if rng else 200)
                if rng:
                    self.send_header("Content-Range", f"bytes {start}-{len(payload) - 1}/{len(payload)}")
                body = payload[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if name in server.cut:
                    self.wfile.write(body[: server.cut.pop(name)])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/mirror"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


VIDEO_A = bytes(range(256)) * 300  # 76,800 bytes: several 1 MiB-chunk-free reads
VIDEO_B = b"\x00\x11" * 5000
SPLIT_TEXT = b"a_brush_hair_u_nm_np1_fr_goo_0.avi 1 \r\n"


@pytest.fixture
def hmdb_server():
    class_rars = {
        "brush_hair.rar": make_rar({"brush_hair/a_brush_hair_u_nm_np1_fr_goo_0.avi": VIDEO_A}),
        "wave.rar": make_rar({"wave/b_wave_u_nm_np1_fr_goo_0.avi": VIDEO_B}),
    }
    files = {
        "hmdb51_org.rar": make_rar(class_rars),
        "test_train_splits.rar": make_rar({"testTrainMulti_7030_splits/brush_hair_test_split1.txt": SPLIT_TEXT}),
    }
    server = Server(files)
    yield server
    server.close()


def _entries(server: Server, **changes) -> list:
    out = []
    for entry in DATASET_ARCHIVES["hmdb51"]:
        payload = server.files[entry.file_name]
        fields = {"size": len(payload), "md5": None, "sha256": hashlib.sha256(payload).hexdigest(),
                  **changes.get(entry.file_name, {})}
        out.append(dataclasses.replace(entry, **fields))
    return out


def test_interrupted_download_resumes_with_range_and_extracts_nested_rars(hmdb_server, tmp_path):
    root = tmp_path / "hmdb"
    archive = hmdb_server.files["hmdb51_org.rar"]
    hmdb_server.cut["hmdb51_org.rar"] = 40_000
    with pytest.raises(DatasetDownloadError, match="stopped at 40000 of .* bytes; run it again to resume; the partial "
                       r"file .*hmdb51_org.rar.part \(40000 bytes\) is kept"):
        download_dataset("hmdb51", root, base_url=hmdb_server.url, files=_entries(hmdb_server), progress=False)
    assert (root / "hmdb51_org.rar.part").stat().st_size == 40_000
    assert not (root / "hmdb51_org.rar").exists() and not (root / "hmdb51_org").exists()

    download_dataset("hmdb51", root, base_url=hmdb_server.url, files=_entries(hmdb_server), progress=False)
    assert ("hmdb51_org.rar", "bytes=40000-") in hmdb_server.requests
    assert (root / "hmdb51_org.rar").read_bytes() == archive
    assert (root / "hmdb51_org" / "brush_hair" / "a_brush_hair_u_nm_np1_fr_goo_0.avi").read_bytes() == VIDEO_A
    assert (root / "hmdb51_org" / "wave" / "b_wave_u_nm_np1_fr_goo_0.avi").read_bytes() == VIDEO_B
    assert (root / "testTrainMulti_7030_splits" / "brush_hair_test_split1.txt").read_bytes() == SPLIT_TEXT
    leftovers = [p.name for p in root.rglob("*") if p.name.endswith(".part") or p.name.startswith(".extract-")]
    assert leftovers == []
    # a third run finds everything done: no request at all
    before = len(hmdb_server.requests)
    download_dataset("hmdb51", root, base_url=hmdb_server.url, files=_entries(hmdb_server), progress=False)
    assert len(hmdb_server.requests) == before


def test_an_offline_download_does_not_claim_a_partial_file_is_kept(hmdb_server, tmp_path):
    """No connection: nothing was written, and the message says so (it used to say a
    ``.part`` file "is kept" when none existed)."""
    import socket

    with socket.socket() as probe:  # a port nobody listens on: the connection is refused, as offline
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    root = tmp_path / "hmdb"
    with pytest.raises(DatasetDownloadError) as caught:
        download_dataset("hmdb51", root, base_url=f"http://127.0.0.1:{port}/mirror", files=_entries(hmdb_server),
                         progress=False)
    message = str(caught.value)
    assert "is kept" not in message and "no partial file was written; run the same command again" in message
    assert not list(root.rglob("*.part"))


def test_checksum_mismatch_deletes_the_partial_file_and_names_both(hmdb_server, tmp_path):
    root = tmp_path / "hmdb"
    files = _entries(hmdb_server, **{"test_train_splits.rar": {"sha256": "0" * 64}})
    with pytest.raises(DatasetDownloadError, match=r"test_train_splits.rar.part: sha256 [0-9a-f]{64}, expected 0{64}"):
        download_dataset("hmdb51", root, base_url=hmdb_server.url, files=files, progress=False)
    assert not (root / "test_train_splits.rar").exists() and not (root / "test_train_splits.rar.part").exists()
    assert not (root / ".done" / "test_train_splits.rar").exists()
    # a wrong size on a file already in place: refused, and the message says what to do
    (root / "test_train_splits.rar").write_bytes(b"short")
    with pytest.raises(DatasetDownloadError, match="5 bytes, expected .* not the official file; delete it"):
        download_dataset("hmdb51", root, base_url=hmdb_server.url, files=_entries(hmdb_server), progress=False)


def test_killed_extraction_is_redone_and_paths_outside_are_refused(tmp_path):
    archive = tmp_path / "a.rar"
    archive.write_bytes(make_rar({"tree/x.bin": VIDEO_B}))
    dest = tmp_path / "dest"
    stale = dest / ".extract-a.rar" / "tree"
    stale.mkdir(parents=True)
    (stale / "half.bin").write_bytes(b"half")  # a killed run's staging folder, never marked complete
    assert extract_archive(archive, dest, progress=False) == [dest / "tree"]
    assert sorted(p.name for p in (dest / "tree").iterdir()) == ["x.bin"]
    evil = tmp_path / "evil.rar"
    evil.write_bytes(make_rar({"../outside.txt": b"x"}))
    with pytest.raises(DatasetDownloadError, match="would be written outside the target folder"):
        extract_archive(evil, dest, progress=False)
    assert not (tmp_path / "outside.txt").exists()


def test_missing_extractor_is_a_clear_error_with_the_install_command(tmp_path, monkeypatch):
    archive = tmp_path / "a.rar"
    archive.write_bytes(make_rar({"x": b"y"}))
    monkeypatch.setitem(sys.modules, "libarchive", None)  # import libarchive now raises ImportError
    with pytest.raises(DatasetDownloadError, match=r"pip install libarchive-c.*apt-get install libarchive13"):
        extract_archive(archive, tmp_path / "d", progress=False)


def test_cli_download_ucf101_from_a_mirror(tmp_path, capsys):
    files = {
        "UCF101.rar": make_rar({"UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi": VIDEO_A}),
        "UCF101TrainTestSplits-RecognitionTask.zip": make_zip({
            "ucfTrainTestlist/classInd.txt": b"1 ApplyEyeMakeup\r\n",
            "ucfTrainTestlist/trainlist01.txt": b"ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi 1\r\n"}),
    }
    server = Server(files)
    try:
        code = main(["download", "ucf101", "--root", str(tmp_path / "ucf"), "--base-url", server.url, "--no-progress"])
    finally:
        server.close()
    assert code == 0
    root = tmp_path / "ucf"
    assert (root / "UCF-101" / "ApplyEyeMakeup" / "v_ApplyEyeMakeup_g01_c01.avi").read_bytes() == VIDEO_A
    assert (root / "ucfTrainTestlist" / "classInd.txt").read_bytes() == b"1 ApplyEyeMakeup\r\n"
    assert "snl-video prepare ucf101 --videos" in capsys.readouterr().out
    assert main(["download", "ucf101", "--root", str(tmp_path / "x"), "--base-url", "http://127.0.0.1:9/none",
                 "--no-progress"]) == 2
