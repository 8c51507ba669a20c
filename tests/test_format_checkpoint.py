"""`open_checkpoint` / `Checkpoint`: kinds, laziness, context management."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import ckptbridge
from ckptbridge.format import (
    OBJECT_GRAPH_KEY,
    BundleWriter,
    CheckpointKind,
    ObjectGraph,
    open_checkpoint,
)


@pytest.fixture
def tf1(tmp_path: Path) -> Path:
    with BundleWriter(tmp_path / "m.ckpt") as writer:
        writer.add("w", np.arange(4, dtype=np.float32))
    return tmp_path / "m.ckpt"


def test_tf1_bundle(tf1: Path) -> None:
    with open_checkpoint(tf1) as ckpt:
        assert ckpt.kind is CheckpointKind.TF1 and ckpt.prefix == tf1
        assert repr(ckpt) == f"Checkpoint({str(tf1)!r}, kind=tf1, entries=1)"
        assert ckpt.object_graph is None and ckpt.meta is None and ckpt.warnings == []
        view = ckpt.read("w")
    np.testing.assert_array_equal(view, [0, 1, 2, 3])  # views outlive close()


def test_tf2_bundle_has_object_graph(tmp_path: Path) -> None:
    with BundleWriter(tmp_path / "ckpt") as writer:
        writer.add(
            OBJECT_GRAPH_KEY, np.array(ObjectGraph.from_variables(["v"]).encode(), dtype=object)
        )
        writer.add("v/.ATTRIBUTES/VARIABLE_VALUE", np.ones(1))
    with open_checkpoint(tmp_path / "ckpt") as ckpt:
        assert ckpt.kind is CheckpointKind.TF2
        assert ckpt.object_graph is not None
        assert [v.paths for v in ckpt.object_graph.variables()] == [("v",)]


def test_damaged_object_graph_is_corrupt(tmp_path: Path) -> None:
    from ckptbridge import CorruptCheckpointError

    with BundleWriter(tmp_path / "ckpt") as writer:
        writer.add(OBJECT_GRAPH_KEY, np.array(b"\x0a\x05x", dtype=object))
    with (
        open_checkpoint(tmp_path / "ckpt") as ckpt,
        pytest.raises(CorruptCheckpointError, match=r"does not decode as a TrackableObjectGraph"),
    ):
        _ = ckpt.object_graph


def test_unknown_key(tf1: Path) -> None:
    with (
        open_checkpoint(tf1) as ckpt,
        pytest.raises(ckptbridge.EntryNotFoundError, match=r"^'x' is not an entry of checkpoint "),
    ):
        ckpt.raw_location("x")
    assert issubclass(ckptbridge.EntryNotFoundError, KeyError)
    assert str(ckptbridge.EntryNotFoundError("no 'x'")) == "no 'x'"  # not quoted as KeyError does


def test_public_names_of_the_format_package() -> None:
    import ckptbridge.format as fmt

    promised = {
        "open_checkpoint", "Checkpoint", "CheckpointKind", "Entry", "RawLocation", "BundleWriter",
        "ObjectGraph", "ObjVariable", "MetaInfo", "MetaVariable", "read_state_file",
        "write_state_file", "resolve_checkpoint",
    }  # fmt: skip
    assert promised <= set(fmt.__all__)
    assert all(hasattr(fmt, name) for name in fmt.__all__)


_TRUNCATE_WHILE_MAPPED = """
import os, sys
import numpy as np
from ckptbridge import CorruptCheckpointError
from ckptbridge.format import BundleWriter, open_checkpoint
prefix = sys.argv[1]
with BundleWriter(prefix) as writer:
    writer.add("a", np.ones(1 << 18, np.float32))
    writer.add("b", np.ones(1 << 18, np.float32))
with open_checkpoint(prefix) as ckpt:
    assert float(ckpt.read("a").sum()) == 1 << 18  # the shard is now mapped
    os.truncate(prefix + ".data-00000-of-00001", 4096)
    for copy in (False, True):
        try:
            ckpt.read("b", copy=copy)
        except CorruptCheckpointError as exc:
            print("clean:", exc)
"""


def test_shard_truncated_while_mapped_gives_our_error_not_sigbus(tmp_path: Path) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _TRUNCATE_WHILE_MAPPED, str(tmp_path / "m")],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert len(lines) == 2
    assert all(
        line.startswith(f"clean: {tmp_path / 'm'}.data-00000-of-00001 is 4096 bytes but entry 'b'")
        for line in lines
    )


def test_read_copy_is_owned_and_writable(tf1: Path) -> None:
    with open_checkpoint(tf1) as ckpt:
        view, owned = ckpt.read("w"), ckpt.read("w", copy=True)
    assert not view.flags.writeable and view.base is not None
    assert owned.flags.writeable and not np.shares_memory(owned, view)
    owned[0] = 9
    np.testing.assert_array_equal(view, [0, 1, 2, 3])


def test_read_strings_is_read_as_a_list(tmp_path: Path) -> None:
    words = np.array([[b"a", b""], [b"bc", b"\x00d"]], dtype=object)
    with BundleWriter(tmp_path / "m") as writer:
        writer.add("n", np.int64(3))
        writer.add("words", words)  # last in the shard
    with open_checkpoint(tmp_path / "m") as ckpt:
        assert ckpt.read_strings("words") == words.reshape(-1).tolist()
        assert ckpt.read("words").tolist() == words.tolist()
        with pytest.raises(
            ckptbridge.UnsupportedCheckpointError,
            match=r"^.*'n' holds int64, not strings; read it with read\(\)$",
        ):
            ckpt.read_strings("n")
    data = tmp_path / "m.data-00000-of-00001"
    raw = bytearray(data.read_bytes())
    raw[-1] ^= 0xFF  # the last string byte
    data.write_bytes(bytes(raw))
    with (
        open_checkpoint(tmp_path / "m") as ckpt,
        pytest.raises(
            ckptbridge.CorruptCheckpointError, match=r"^.*'words'.*fails its CRC32C check"
        ),
    ):
        ckpt.read_strings("words")
