"""`open_checkpoint` / `Checkpoint`: kinds, laziness, context management."""

from __future__ import annotations

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
