"""Errors that reach the user as one line.

Every failure a user can cause (bad model name, unsupported op, corrupt file, missing toolchain) raises a
subclass of :class:`LncompileError`; the CLI prints ``str(error)`` on one line and exits with ``exit_code``.
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class LncompileError(Exception):
    """A failure the user can act on; the message names the problem and, where known, the fix."""

    exit_code = 1


class UsageError(LncompileError):
    """The command or API was called with values it cannot take (exit status 2, as for CLI usage errors)."""

    exit_code = 2


class UnknownModelError(UsageError):
    """A model name that is neither in the zoo nor an existing ONNX file."""


class UnknownTargetError(UsageError):
    """A target name with no preset."""


class UnsupportedOpError(LncompileError):
    """An operator the frontend cannot translate; the message names the op and where it came from."""


class ModelFormatError(LncompileError):
    """A model file that cannot be read: missing, empty, truncated or malformed."""


class IRVerificationError(LncompileError):
    """The IR broke one of its invariants (a bug in a frontend or a pass, reported with the node)."""


class BuildError(LncompileError):
    """TVM failed to build or export a library."""


class ToolchainError(LncompileError):
    """A required external tool (cross compiler, qemu, nvcc) is missing; the message gives the install command."""


class RuntimeInputError(UsageError):
    """A compiled model was called with an input of the wrong shape, dtype or count."""
