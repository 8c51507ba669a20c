"""Import TensorFlow on demand, without its start-up noise.

TensorFlow 2.21 writes absl/oneDNN/CUDA notices straight to file descriptor 2 while it is imported
and first used, whatever ``TF_CPP_MIN_LOG_LEVEL`` says. Where ckptbridge itself is the first to
import TensorFlow (a model factory named on the command line) it goes through this
function, so the command line stays quiet. Code that receives a live model imports ``tensorflow``
plainly: the caller has imported it already.
"""

from __future__ import annotations

import os
import sys
from typing import Any

__all__ = ["import_tensorflow"]


def import_tensorflow() -> Any:
    """Return the ``tensorflow`` module, importing it with file descriptor 2 silenced.

    Python exceptions still propagate; only the C++ notices printed meanwhile are dropped. When
    TensorFlow is already imported (the user's own program did it), this is a dictionary lookup.

    Example::

        tf = import_tensorflow()
    """
    loaded = sys.modules.get("tensorflow")
    if loaded is not None:
        return loaded
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (embedded interpreters): import as is
        import tensorflow

        return tensorflow
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            import tensorflow

            tensorflow.constant(0)  # device set-up logs its notices on first use
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    return tensorflow
