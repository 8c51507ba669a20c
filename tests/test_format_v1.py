"""The V1 single-file format goes through TensorFlow's reader, imported only then."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from ckptbridge.format import CheckpointKind, open_checkpoint


def test_v1_file_reads_and_lists(corpus: Path) -> None:
    with open_checkpoint(corpus / "Gknoblau__nxt-tensorflow" / "video_weights.ckpt") as ckpt:
        assert ckpt.kind is CheckpointKind.TF1_V1
        assert ckpt.entries["mweight"].shape == (4, 10) and ckpt.entries["mweight"].nbytes == 160
        assert ckpt.read("mweight").dtype == np.float32
        assert ckpt.raw_location("mweight") is None
        assert ckpt.object_graph is None


def test_v1_imports_tensorflow_only_when_opened(corpus: Path) -> None:
    code = (
        "import sys\n"
        "from ckptbridge.format import open_checkpoint\n"
        "before = 'tensorflow' in sys.modules\n"
        f"ckpt = open_checkpoint({str(corpus / '255BITS__vocal-autoencoder')!r})\n"
        "print(before, 'tensorflow' in sys.modules, ckpt.kind.value)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True", "tf1-v1"]
