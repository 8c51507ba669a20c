"""Real servers on loopback for the remote-storage tests: an S3 API (moto's standalone server,
reached through s3fs) and an HTTP server that honours ``Range`` requests and counts what it sends.

Each is a context manager; the S3 one sets the standard ``AWS_*`` variables (``AWS_ENDPOINT_URL``
included) for the duration, as a user's environment would, and forgets cached file systems so
that the next one reads them.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec


def forget_filesystems() -> None:
    """Drop every cached fsspec/ckptbridge file system (they captured the old environment)."""
    from ckptbridge.format import _storage

    _storage._STORES.clear()
    for cls in (fsspec.get_filesystem_class("s3"), fsspec.get_filesystem_class("http")):
        cls.clear_instance_cache()


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with single ``Range: bytes=a-b`` support; counts payload bytes sent."""

    sent = 0
    requests = 0
    lock = threading.Lock()

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _count(self, n: int) -> None:
        with _RangeHandler.lock:
            _RangeHandler.sent += n
            _RangeHandler.requests += 1

    def do_GET(self) -> None:
        path = Path(self.translate_path(self.path))
        header = self.headers.get("Range")
        if not path.is_file() or not header or not header.startswith("bytes="):
            if path.is_file():
                self._count(path.stat().st_size)
            return super().do_GET()
        size = path.stat().st_size
        first, _, last = header[len("bytes=") :].partition("-")
        start = int(first) if first else max(0, size - int(last))
        end = min(int(last), size - 1) if first and last else size - 1
        if start >= size:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.end_headers()
            return
        with path.open("rb") as handle:
            handle.seek(start)
            body = handle.read(end - start + 1)
        self.send_response(206)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self._count(len(body))  # before sending: the client may go on as soon as it has it
        self.wfile.write(body)

    def end_headers(self) -> None:
        self.send_header("Accept-Ranges", "bytes")
        super().end_headers()


@contextlib.contextmanager
def http_range_server(root: Path) -> Iterator[tuple[str, type[_RangeHandler]]]:
    """Serve ``root`` on 127.0.0.1; yield the base URL and the handler class (its counters)."""

    class Handler(_RangeHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    forget_filesystems()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", _RangeHandler
    finally:
        server.shutdown()
        server.server_close()


_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@contextlib.contextmanager
def moto_s3(bucket: str = "ckpts") -> Iterator[str]:
    """Start moto's S3 server on 127.0.0.1, point the ``AWS_*`` variables at it, create
    ``bucket``; yield the endpoint URL."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{server._server.server_port}"
    saved = {k: os.environ.get(k) for k in [*_AWS, "AWS_ENDPOINT_URL"]}
    os.environ.update(_AWS, AWS_ENDPOINT_URL=endpoint)
    forget_filesystems()
    import urllib.request

    # moto keeps its buckets in the process: start each server from an empty store
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"))
    try:
        fsspec.filesystem("s3").mkdir(bucket)
        yield endpoint
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        forget_filesystems()
        server.stop()


def upload(local: Path, url: str) -> None:
    """Copy a local directory (or file) to ``url`` as the user would with their own tools."""
    fs, path = fsspec.core.url_to_fs(url)
    if local.is_dir():
        for file in sorted(p for p in local.rglob("*") if p.is_file()):
            fs.put_file(str(file), f"{path}/{file.relative_to(local).as_posix()}")
    else:
        fs.put_file(str(local), path)
