"""Remote reads against moto's S3 server on loopback: bytes moved and throughput, each figure beside
a plain download of the same checkpoint measured in the same run (the anchor).

1. ``inspect`` of the checkpoint moves only its index (bytes counted by the store);
2. reading every tensor by byte range (parallel parts, CRC32C checked) vs downloading the files
   with s3fs (``get_file``) and reading them locally; both move the data once.

Run by hand (needs fsspec, s3fs, moto[server])::

    python benchmarks/bench_remote.py [--mb 512] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import ckptbridge
from ckptbridge.format import (
    BundleWriter,
    _storage,
    open_checkpoint,
)
from remote_servers import http_range_server, moto_s3, upload


def _write(directory: Path, megabytes: int) -> Path:
    """A VGG-like checkpoint: a few large float32 kernels, many small tensors."""
    rng = np.random.default_rng(0)
    prefix = directory / "model.ckpt"
    with BundleWriter(prefix) as writer:
        left, i = megabytes << 20, 0
        while left > 0:
            size = min(left, 64 << 20) // 4
            writer.add(f"layer{i}/kernel", rng.standard_normal(size, dtype=np.float32))
            writer.add(f"layer{i}/bias", rng.standard_normal(256, dtype=np.float32))
            left -= size * 4
            i += 1
        writer.add("global_step", np.int64(1000))
    return prefix


def _best(rounds: int, fn: object) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--server", choices=("moto", "http"), default="moto")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        prefix = _write(Path(tmp) / "run", args.mb)
        if args.server == "moto":
            with moto_s3():
                upload(prefix.parent, "s3://ckpts/run")
                _measure(args, prefix, "s3://ckpts/run", _storage.store_for_protocol("s3"))
        else:
            with http_range_server(prefix.parent) as (base, _):
                _measure(args, prefix, base, _storage.store_for_protocol("http"))


def _measure(
    args: argparse.Namespace, prefix: Path, root: str, store: _storage.FsspecStore
) -> None:
    if True:  # one block: the figures below print what was measured above
        files = sorted(prefix.parent.iterdir())
        total = sum(f.stat().st_size for f in files)
        url = f"{root}/model.ckpt"

        store.bytes_read = 0
        t_inspect = _best(args.rounds, lambda: ckptbridge.inspect(url))
        inspect_bytes = store.bytes_read // args.rounds
        index_bytes = (prefix.parent / "model.ckpt.index").stat().st_size

        def read_remote() -> None:
            with open_checkpoint(url) as ckpt:
                for key in ckpt.entries:
                    ckpt.read(key)

        def download_then_read() -> None:
            with tempfile.TemporaryDirectory() as dest:
                for f in files:
                    store.fs.get_file(f"{root}/{f.name}", os.path.join(dest, f.name))
                with open_checkpoint(Path(dest) / "model.ckpt") as ckpt:
                    for key in ckpt.entries:
                        ckpt.read(key)

        store.bytes_read = 0
        t_remote = _best(args.rounds, read_remote)
        read_bytes = store.bytes_read // args.rounds
        t_download = _best(args.rounds, download_then_read)

    mb = total / 1e6
    print(
        f"server: {args.server}; checkpoint: {mb:.1f} MB in {len(files)} files, index {index_bytes} B"
    )
    print(f"inspect: {inspect_bytes} B moved ({inspect_bytes / total:.2e} of the checkpoint), "
          f"{t_inspect * 1000:.0f} ms")  # fmt: skip
    print(f"read every tensor by range: {t_remote:.2f} s, {mb / t_remote:.0f} MB/s, "
          f"{read_bytes / 1e6:.1f} MB moved")  # fmt: skip
    print(f"anchor, download (s3fs get_file) + local read: {t_download:.2f} s, "
          f"{mb / t_download:.0f} MB/s")  # fmt: skip
    print(f"ratio ranged/download time: {t_remote / t_download:.2f}x "
          f"(concurrency {_storage.concurrency()}, parts of {_storage.PART >> 20} MiB)")  # fmt: skip


if __name__ == "__main__":
    main()
