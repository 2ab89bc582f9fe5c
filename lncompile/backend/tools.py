"""External tools a build needs beyond TVM (cross compilers, nvcc): found on PATH, or a one-line error with the
install command. No TVM import, so the CLI checks them before it spends a minute importing and compiling."""

from __future__ import annotations

import shutil
from typing import Any

from ..errors import ToolchainError

# How to get each external tool on Debian/Ubuntu (named in the error when it is missing).
INSTALL_HINTS = {
    "aarch64-linux-gnu-g++": "apt-get install g++-aarch64-linux-gnu",
    "aarch64-linux-gnu-gcc": "apt-get install gcc-aarch64-linux-gnu",
    "qemu-aarch64": "apt-get install qemu-user",
    "nvcc": "apt-get install nvidia-cuda-toolkit (or NVIDIA's CUDA toolkit) and put nvcc on PATH",
}


def require_tool(tool: str) -> str:
    """The path of ``tool`` on PATH; ToolchainError naming its install command if it is not there."""
    found = shutil.which(tool)
    if found is None:
        raise ToolchainError(f"{tool} not found; install it with: {INSTALL_HINTS.get(tool, tool)}")
    return found


def require_preset_tools(preset: Any) -> None:
    """The tools a library for ``preset`` is made with: its cross compiler (linking), nvcc (CUDA device code)."""
    if preset.cross_compiler:
        require_tool(preset.cross_compiler)
    if preset.device == "cuda":
        require_tool("nvcc")
