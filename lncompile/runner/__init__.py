"""The C++ runner shipped as package data: ``runner.cc`` loads a library with TVM's C++ runtime, no Python.

:mod:`lncompile.arm` compiles it (cross or native) against the runtime of the library's architecture.
"""

from __future__ import annotations

from pathlib import Path

SOURCE = Path(__file__).with_name("runner.cc")
