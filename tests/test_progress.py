"""Progress bars (``ckptbridge._progress``): on stderr when it is a terminal, never when piped or
with ``--json``. Each case runs the real CLI (or ``ckptbridge.restore``) in a child process whose
stderr is a pseudo-terminal or a pipe; ``DELAY`` is set to 0 so small checkpoints show a bar."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios
from pathlib import Path

import numpy as np
import pytest

from ckptbridge import _progress
from ckptbridge.format import BundleWriter

_DRIVER = """
import sys
import ckptbridge._progress
ckptbridge._progress.DELAY = 0
from ckptbridge.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    prefix = tmp_path_factory.mktemp("progress") / "model.ckpt-3"
    with BundleWriter(prefix) as writer:
        writer.add("dense/kernel", np.ones((64, 32), np.float32))
        writer.add("dense/bias", np.zeros(32, np.float32))
        writer.add("global_step", np.int64(3))
    return prefix


def _run(args: list[str], *, terminal: bool) -> tuple[int, str, str]:
    """Run the driver with ``args``; stdout is a pipe, stderr a pseudo-terminal or a pipe."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    cmd = [sys.executable, "-c", _DRIVER, *args]
    if not terminal:
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
        return done.returncode, done.stdout, done.stderr
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # tqdm hides at 0x0
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=slave, env=env) as proc:
        os.close(slave)
        err = bytearray()
        while True:  # drain the terminal while the child runs, or it blocks on a full buffer
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed its end
                    break
                if not chunk:
                    break
                err += chunk
            elif proc.poll() is not None:
                break
        out = proc.stdout.read().decode() if proc.stdout else ""
        code = proc.wait(timeout=300)
    os.close(master)
    return code, out, err.decode(errors="replace")


def test_convert_shows_a_byte_bar_on_a_terminal(bundle: Path, tmp_path: Path) -> None:
    args = ["convert", str(bundle), "--target", str(bundle), "--to", "tf1", "--out"]
    code, out, err = _run([*args, str(tmp_path / "tty")], terminal=True)
    assert code == 0 and "1 converted" in out
    assert "convert model.ckpt-3" in err and "B/s" in err

    code, out, err = _run([*args, str(tmp_path / "pipe")], terminal=False)
    assert code == 0 and "1 converted" in out
    assert "convert model.ckpt-3" not in err and "%|" not in err

    code, out, err = _run([*args, str(tmp_path / "json"), "--json"], terminal=True)
    assert code == 0 and out.startswith("{")
    assert "%|" not in err


def test_verify_shows_a_byte_bar_on_a_terminal(bundle: Path) -> None:
    code, out, err = _run(["verify", str(bundle)], terminal=True)
    assert code == 0 and out.endswith("ok\n")
    assert "verify model.ckpt-3" in err and "B/s" in err
    code, _, err = _run(["verify", str(bundle)], terminal=False)
    assert code == 0 and "%|" not in err
    code, _, err = _run(["verify", str(bundle), "--json"], terminal=True)
    assert code == 0 and "%|" not in err


def test_restore_shows_a_byte_bar_on_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keras = pytest.importorskip("keras")
    import ckptbridge

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, name="fc")], name="m")
    model.save_weights(tmp_path / "m.weights.h5")
    monkeypatch.setattr(_progress, "DELAY", 0)
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    with os.fdopen(slave, "w") as terminal:
        monkeypatch.setattr(sys, "stderr", terminal)
        assert ckptbridge.restore(model, tmp_path / "m.weights.h5").complete
        terminal.flush()
        monkeypatch.undo()
    err = os.read(master, 65536).decode(errors="replace")
    os.close(master)
    assert "restore m.weights.h5" in err and "B/s" in err


def test_advance_without_a_bar_does_nothing() -> None:
    _progress.advance(10)
    _progress.set_total(10)
    with _progress.byte_bar("x", show=False) as bar:
        assert bar is None
    assert _progress.wanted(False) is False and _progress.wanted(True) is True
