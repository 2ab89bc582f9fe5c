"""Start-up fix for MetaSchedule's build/run worker processes (on their PYTHONPATH only while tuning).

Why: LocalBuilder restarts its worker processes for every batch, and each worker imports
``tvm.s_tir.tensor_intrin``. The TVMScript parser calls ``inspect.stack()`` for ~500 intrinsics, and for
every frame whose file name is a pseudo-name such as ``<frozen importlib._bootstrap>`` the standard
library's ``inspect.getmodule`` walks all of ``sys.modules`` (about 2,000 entries once tvm_ffi has
imported torch) looking for a module with that file. No module has such a file, so the walk always ends in
``None``: answering ``None`` at once changes no result and removes tens of seconds per worker.
Measured on this project's 2-core machine: ``import tvm.s_tir.tensor_intrin`` 42 s before, 6.6 s after.
"""

import inspect
import types

_original_getmodule = inspect.getmodule


def _getmodule(obj, _filename=None):  # same signature as inspect.getmodule
    if (
        _filename is not None
        and _filename.startswith("<")
        and _filename.endswith(">")
        and isinstance(obj, (types.FrameType, types.CodeType, types.TracebackType))
    ):
        return None
    return _original_getmodule(obj, _filename)


inspect.getmodule = _getmodule
