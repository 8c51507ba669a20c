"""Run fuzz cases against ckptbridge's contract, in child processes that may die, hang or blow up.

The contract for every input: a :class:`ckptbridge.CkptBridgeError` with a clean one-line-able
message, or correct values. Never a signal, a hang, a memory blow-up, a foreign exception, or a
wrong value. :class:`Worker` keeps one child process (``python fuzz_harness.py --child``) with
``RLIMIT_AS`` set and ``faulthandler`` on; each case runs ``inspect``, ``load_variables``,
``verify`` and the ``inspect``/``verify`` command lines on the case path, and reports exceptions and
value digests. The parent kills the child on timeout (a hang) and restarts it after a signal or a
blow-up. :class:`TFOracle` is the same for TensorFlow's own reader (``tf.train.load_checkpoint``)::

    with Worker() as worker:
        result = worker.run(Path("/tmp/case/model.ckpt-1"))
    problems = judge(result, original_digests, preserving=True, tf_result=None)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SRC = Path(os.environ.get("FUZZ_SRC", HERE.parent / "src"))  # the ckptbridge under test
MEMORY_LIMIT = 2 << 30  # RLIMIT_AS of the ckptbridge child (address space, not RSS)
RSS_LIMIT_KB = 1 << 20  # a case whose peak RSS passes 1 GiB is a blow-up
OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
NO_NUMPY = ("resource", "variant")


def digest(value: Any) -> list[Any]:
    """(dtype, shape, sha1 of the values) of an array, the same for ckptbridge and TensorFlow."""
    import numpy as np

    if isinstance(value, bytes):  # TensorFlow's scalar string (np.asarray would drop NULs)
        value = np.array([value], dtype=object).reshape(())
    array = np.asarray(value)
    if array.dtype.kind in "OS":  # TensorFlow gives a scalar string as bytes (dtype S)
        body = repr([bytes(v) for v in array.reshape(-1)]).encode()
        name = "string"
    else:
        if array.dtype.byteorder == ">":
            array = array.astype(array.dtype.newbyteorder("="))
        body = np.ascontiguousarray(array).tobytes()
        name = str(array.dtype)
    return [name, list(array.shape), hashlib.sha1(body).hexdigest()[:16]]


# -- the child: runs the public API on one path at a time ---------------------------------------
def _frame(tb: Any) -> str:
    import traceback

    frames = traceback.extract_tb(tb)
    ours = [f for f in frames if "ckptbridge" in f.filename]
    last = (ours or frames)[-1] if frames else None
    if last is None:
        return "?"
    name = last.filename.split("src/", 1)[-1]
    return f"{name}:{last.lineno} ({last.name})"


def _op(name: str, fn: Any) -> dict[str, Any]:
    from ckptbridge import CkptBridgeError

    try:
        value = fn()
    except CkptBridgeError as exc:
        message = str(exc)
        return {"op": name, "outcome": "error", "type": type(exc).__name__, "message": message[:300],
                "lines": len(message.splitlines()) or 1}  # fmt: skip
    except MemoryError as exc:
        return {"op": name, "outcome": "blowup", "type": "MemoryError", "message": str(exc)[:200],
                "where": _frame(exc.__traceback__)}  # fmt: skip
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        return {"op": name, "outcome": "foreign", "type": type(exc).__name__,
                "message": str(exc)[:300], "where": _frame(exc.__traceback__)}  # fmt: skip
    return {"op": name, "outcome": "ok", "value": value}


def _cli(argv: list[str]) -> dict[str, Any]:
    import contextlib
    import io

    from ckptbridge.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    lines = err.getvalue().splitlines()
    return {"code": code, "stderr": lines[:3]}


def run_case(path: str, ops: list[str]) -> list[dict[str, Any]]:
    """Run the contract's operations on ``path`` in this process (the child)."""
    import ckptbridge
    from ckptbridge.format import open_checkpoint, read_state_file

    results = []
    for op in ops:
        if op == "inspect":
            results.append(_op(op, lambda: _inspect(ckptbridge.inspect(path))))
        elif op == "load":
            results.append(
                _op(op, lambda: {k: digest(v) for k, v in ckptbridge.load_variables(path).items()})
            )
        elif op == "verify":
            results.append(_op(op, lambda: str(ckptbridge.verify(path)).count("\n")))
        elif op == "graph":
            results.append(_op(op, lambda: _graph(open_checkpoint(path))))
        elif op == "state":
            results.append(_op(op, lambda: repr(read_state_file(path))[:100]))
        elif op.startswith("cli_"):
            results.append(_op(op, lambda op=op: _cli([op[4:], path])))
    return results


def _inspect(info: Any) -> dict[str, Any]:
    str(info)
    json.dumps(info.to_json()) if hasattr(info, "to_json") else None
    return {"prefix": info.prefix, "kind": str(info.kind.value),
            "entries": {e.key: [e.dtype, list(e.shape)] for e in info.entries}}  # fmt: skip


def _graph(ckpt: Any) -> int:
    with ckpt:
        graph = ckpt.object_graph
        if graph is None:
            return 0
        for var in graph.variables():
            ckpt.stored_key(var.paths[0] + "/.ATTRIBUTES/VARIABLE_VALUE") if var.paths else None
        return len(list(graph.variables()))


def _reset_peak_rss() -> None:
    with open("/proc/self/clear_refs", "w") as handle:  # "5": reset the peak RSS (Linux >= 4.0)
        handle.write("5")


def _peak_rss_kb() -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def _child_main() -> None:
    import faulthandler
    import resource

    faulthandler.enable()
    limit = int(os.environ.get("FUZZ_MEMORY_LIMIT", MEMORY_LIMIT))
    import h5py  # noqa: F401
    import numpy  # noqa: F401

    import ckptbridge.cli
    import ckptbridge.tools  # noqa: F401

    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        start = time.monotonic()
        _reset_peak_rss()
        results = run_case(request["path"], request["ops"])
        rss = _peak_rss_kb()
        print(
            json.dumps({"results": results, "rss_kb": rss, "seconds": time.monotonic() - start}),
            flush=True,
        )


def _tf_main() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import faulthandler

    faulthandler.enable()
    import tensorflow as tf

    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        out: dict[str, Any] = {"ok": False, "values": {}, "errors": {}}
        try:
            reader = tf.train.load_checkpoint(request["path"])
            dtypes = reader.get_variable_to_dtype_map()
            out["ok"] = True
            for key, dtype in dtypes.items():
                if key == OBJECT_GRAPH_KEY or dtype.name.startswith(NO_NUMPY):
                    continue
                try:
                    out["values"][key] = digest(reader.get_tensor(key))
                except Exception as exc:
                    out["errors"][key] = f"{type(exc).__name__}: {str(exc)[:120]}"
        except Exception as exc:
            out["error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
        print(json.dumps(out), flush=True)


# -- the parent side -------------------------------------------------------------------------------
class _Process:
    """A line-oriented child that can be timed out and restarted."""

    def __init__(self, argv: list[str], env: dict[str, str], start_timeout: float) -> None:
        self.argv, self.env, self.start_timeout = argv, env, start_timeout
        self.proc: subprocess.Popen[str] | None = None
        self.restarts = 0

    def _start(self) -> None:
        self.proc = subprocess.Popen(
            self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env=self.env, start_new_session=True,
        )  # fmt: skip
        os.set_blocking(self.proc.stderr.fileno(), False)  # type: ignore[union-attr]
        ready = self._readline(self.start_timeout)
        if ready is None or "ready" not in ready:
            raise RuntimeError(f"fuzz child did not start: {self._stderr()[-2000:]}")

    def _stderr(self) -> str:
        assert self.proc is not None and self.proc.stderr is not None
        chunks = []
        try:
            while chunk := os.read(self.proc.stderr.fileno(), 65536):
                chunks.append(chunk)
        except (BlockingIOError, OSError, ValueError):
            pass
        return b"".join(chunks).decode("utf-8", "replace")

    def _readline(self, timeout: float) -> dict[str, Any] | None:
        assert self.proc is not None and self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            return None
        line = self.proc.stdout.readline()
        return json.loads(line) if line else None

    def kill(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)  # the child's own session only
            self.proc.wait()
            self._close()

    def _close(self) -> None:
        assert self.proc is not None
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        self.proc = None

    def ask(
        self, request: dict[str, Any], timeout: float
    ) -> tuple[str, dict[str, Any] | None, str]:
        """Return (status, reply, stderr tail): status ok, hang or died (with the signal)."""
        if self.proc is None:
            self._start()
        assert self.proc is not None and self.proc.stdin is not None
        self._stderr()  # drop old noise
        try:
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass
        reply = self._readline(timeout)
        if reply is not None:
            return "ok", reply, ""
        alive = self.proc.poll() is None
        if alive:
            self.kill()
            self.restarts += 1
            return "hang", None, ""
        code = self.proc.wait()
        tail = self._stderr()[-1500:]
        self._close()
        self.restarts += 1
        return f"died:{-code if code < 0 else code}", None, tail

    def __enter__(self) -> _Process:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), str(HERE)])
    env.update({"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0",
                "TF_CPP_MIN_LOG_LEVEL": "3", "TF_USE_LEGACY_KERAS": "1", "HDF5_USE_FILE_LOCKING": "FALSE"})  # fmt: skip
    env.update(extra)
    return env


class Worker(_Process):
    """The ckptbridge child (address space limited; restarted after a blow-up or a signal)."""

    def __init__(self, memory_limit: int = MEMORY_LIMIT) -> None:
        super().__init__([sys.executable, str(Path(__file__)), "--child"],
                         _env({"FUZZ_MEMORY_LIMIT": str(memory_limit)}), 120)  # fmt: skip

    def run(self, path: Path, ops: list[str], timeout: float = 20.0) -> dict[str, Any]:
        status, reply, tail = self.ask({"path": str(path), "ops": ops}, timeout)
        if reply is None:
            return {"status": status, "stderr": tail}
        if reply["rss_kb"] > RSS_LIMIT_KB:
            return {"status": "blowup", "rss_kb": reply["rss_kb"], **reply}
        return {"status": "ok", **reply}


class TFOracle(_Process):
    """TensorFlow's reader in a child (it aborts on some damaged files)."""

    def __init__(self) -> None:
        super().__init__([sys.executable, str(Path(__file__)), "--tf"], _env({}), 300)

    def read(self, path: str, timeout: float = 60.0) -> dict[str, Any]:
        status, reply, _ = self.ask({"path": path}, timeout)
        return (
            reply
            if reply is not None
            else {"ok": False, "error": f"TF {status}", "values": {}, "errors": {}}
        )


# -- judging -------------------------------------------------------------------------------------------
def problems(result: dict[str, Any]) -> list[tuple[str, str]]:
    """Contract breaches visible without an oracle: (class, detail) pairs."""
    found: list[tuple[str, str]] = []
    status = result["status"]
    if status == "hang":
        found.append(("hang", "timeout"))
    elif status.startswith("died"):
        where = [
            line
            for line in result.get("stderr", "").splitlines()
            if "ckptbridge" in line or "File" in line
        ]
        found.append((f"signal {status[5:]}", (where[0].strip() if where else "")[:160]))
    elif status == "blowup":
        found.append(("blowup", f"peak RSS {result['rss_kb'] >> 10} MiB"))
    for op in result.get("results", []):
        if op["outcome"] == "foreign":
            found.append((f"foreign {op['type']}", f"at {op['where']}: {op['message'][:120]}"))
        elif op["outcome"] == "blowup":
            found.append(("blowup MemoryError", f"at {op['where']}"))
        elif op["outcome"] == "error" and not op["message"].strip():
            found.append(("empty message", f"{op['op']} {op['type']}"))
        elif op["outcome"] == "ok" and op["op"].startswith("cli_"):
            code, stderr = op["value"]["code"], op["value"]["stderr"]
            report = op["op"] == "cli_verify" and not stderr  # damage is reported on stdout
            if code not in (0, 1, 2) or (
                code == 2
                and not report
                and (len(stderr) != 1 or not stderr[0].startswith("ckptbridge: error:"))
            ):
                found.append(("cli contract", f"{op['op']} exit {code}, stderr {stderr[:2]}"))
    return list(dict.fromkeys(found))  # once per case, whichever operations hit it


def loaded(result: dict[str, Any]) -> dict[str, list[Any]] | None:
    """The value digests load_variables returned, or None when it raised."""
    for op in result.get("results", []):
        if op["op"] == "load" and op["outcome"] == "ok":
            return dict(op["value"])
    return None


def compare(
    ours: dict[str, list[Any]], theirs: dict[str, list[Any]], *, skip: set[str] = frozenset()
) -> list[str]:  # type: ignore[assignment]
    """Differences between two {key: digest} maps (keys in ``skip`` are not compared)."""
    diffs: list[str] = []
    for key in sorted(set(ours) | set(theirs)):
        if key in skip or key == OBJECT_GRAPH_KEY:
            continue
        if key not in ours:
            diffs.append(f"missing {key!r}")
        elif key not in theirs:
            diffs.append(f"extra {key!r}")
        elif ours[key] != theirs[key]:
            diffs.append(f"{key!r}: {ours[key][:2]} vs {theirs[key][:2]}")
    return diffs


if __name__ == "__main__":
    if sys.argv[1:] == ["--child"]:
        _child_main()
    elif sys.argv[1:] == ["--tf"]:
        _tf_main()
