"""CUDA device code compiled at build time and embedded in the library as a fatbin.

TVM 0.27's CUDA codegen, run where no CUDA runtime is loaded (a build machine without a GPU), keeps each CUDA
module as *source* (format ``"cuda"``); the runtime then compiles it when the library is loaded, through a
Python callback (NVRTC, which needs the cuda-bindings package, or nvcc). A deployment would need Python and a
CUDA compiler. Instead, at export we compile that source with nvcc into a fatbin (SASS for the target's
``sm_XX`` plus its PTX, so newer GPUs can JIT it) and rewrite the module's serialized bytes to format
``"fatbin"``: TVM's CUDA runtime loads those with ``cuModuleLoadData``, no compiler involved.

The serialized import tree (``__tvm_ffi__library_bin``, TVM FFI's format as of 0.27; strings and byte
strings are a little-endian u64 length followed by the bytes)::

    u64 size of the rest | u64 n, n x u64 CSR row pointers | u64 m, m x u64 child indices
    per module: string kind, then (except the host library "_lib") u64 size + the module's SaveToBytes

and a CUDA module's SaveToBytes is ``string fmt | function table | bytes code`` (code last).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import BuildError

_U64 = struct.Struct("<Q")
_HOST_LIB = "_lib"  # the placeholder for the host .so's own code: a kind with no payload


@dataclass
class PackedImports:
    """The import-tree blob split into its module entries (kind, payload or None for the host library)."""

    row_ptr: list[int]
    children: list[int]
    modules: list[tuple[str, bytes | None]]

    def to_bytes(self) -> bytes:
        body = [_u64s(self.row_ptr), _u64s(self.children)]
        for kind, payload in self.modules:
            body.append(_string(kind.encode()))
            if payload is not None:
                body.append(_string(payload))
        rest = b"".join(body)
        return _U64.pack(len(rest)) + rest


def _string(data: bytes) -> bytes:
    return _U64.pack(len(data)) + data


def _u64s(values: list[int]) -> bytes:
    return _U64.pack(len(values)) + struct.pack(f"<{len(values)}Q", *values)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def u64(self) -> int:
        if self.pos + 8 > len(self.data):
            raise BuildError("unrecognized TVM module serialization (truncated); lncompile expects TVM 0.27's")
        (value,) = _U64.unpack_from(self.data, self.pos)
        self.pos += 8
        return value

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise BuildError("unrecognized TVM module serialization (truncated); lncompile expects TVM 0.27's")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def string(self) -> bytes:
        return self.take(self.u64())


def parse_packed_imports(blob: bytes) -> PackedImports:
    reader = _Reader(blob)
    size = reader.u64()
    if size != len(blob) - 8:
        raise BuildError(f"unrecognized TVM module serialization (size {size} != {len(blob) - 8})")
    row_ptr = [reader.u64() for _ in range(reader.u64())]
    children = [reader.u64() for _ in range(reader.u64())]
    modules: list[tuple[str, bytes | None]] = []
    for _ in range(max(len(row_ptr) - 1, 0)):
        kind = reader.string().decode()
        modules.append((kind, None if kind == _HOST_LIB else reader.string()))
    if reader.pos != len(blob):
        raise BuildError("unrecognized TVM module serialization (trailing bytes)")
    return PackedImports(row_ptr, children, modules)


def split_cuda_payload(payload: bytes) -> tuple[str, bytes, bytes]:
    """(fmt, function table bytes, code) of a serialized CUDA module.

    The function table's layout is TVM-internal; it is carried over unchanged. The code is the last field,
    so it starts at the first offset whose u64 length prefix reaches exactly the end of the payload.
    """
    reader = _Reader(payload)
    fmt = reader.string().decode()
    start = reader.pos
    for pos in range(start, len(payload) - 7):
        (length,) = _U64.unpack_from(payload, pos)
        if pos + 8 + length == len(payload):
            return fmt, payload[start:pos], payload[pos + 8:]
    raise BuildError("unrecognized CUDA module serialization (no trailing code field)")


def compile_cuda_modules(blob: bytes, compile_source: Any) -> tuple[bytes, int]:
    """Replace every CUDA module stored as source by ``compile_source(source) -> fatbin``.

    Returns the new blob and how many modules were compiled. Modules already compiled (built on a machine
    with a GPU, where TVM's codegen compiles them itself) are left alone.
    """
    packed = parse_packed_imports(blob)
    compiled = 0
    for index, (kind, payload) in enumerate(packed.modules):
        if kind != "cuda" or payload is None:
            continue
        fmt, table, code = split_cuda_payload(payload)
        if fmt != "cuda":
            continue
        source = code.decode()
        if "__global__" not in source:
            raise BuildError("unrecognized CUDA module serialization (its code is not CUDA source)")
        fatbin = compile_source(source)
        packed.modules[index] = (kind, _string(b"fatbin") + table + _string(fatbin))
        compiled += 1
    return packed.to_bytes(), compiled


def incbin_assembly(symbol: str, blob_path: Path) -> str:
    """GNU assembler source defining ``symbol`` as the bytes of ``blob_path`` (x86-64 and aarch64 alike).

    Assembling beats TVM's default of writing the blob as a C array: that is ~5 bytes of C per byte of
    weights, which g++ then has to parse.
    """
    return (
        "\t.section .rodata\n"
        f"\t.globl {symbol}\n"
        f"\t.type {symbol}, @object\n"
        "\t.balign 16\n"
        f"{symbol}:\n"
        f'\t.incbin "{blob_path}"\n'
        f"\t.size {symbol}, {blob_path.stat().st_size}\n"
        '\t.section .note.GNU-stack,"",@progbits\n'
    )


def fatbin_packer(arch: str, options: list[str] | None = None) -> Any:
    """An ``fpack_imports`` for ``export_library``: CUDA source -> fatbin for ``arch``, embedded via assembly.

    nvcc runs uncompressed (``--no-compress``): the library is a little larger but its PTX stays readable
    (``.target sm_XX``), and loading skips decompression.
    """
    from . import tvm_api

    def compile_source(source: str) -> bytes:
        try:
            return tvm_api.compile_cuda_fatbin(source, arch, ["--no-compress", *(options or [])])
        except Exception as e:  # nvcc's output follows the (long) source in the message: keep its last line
            raise BuildError(f"nvcc could not compile the CUDA kernels for {arch}: "
                             f"{str(e).strip().splitlines()[-1]}") from e

    def pack(module: Any, is_system_lib: bool, prefix: str, workspace_dir: str) -> str:
        if is_system_lib:
            raise BuildError("embedding compiled CUDA code into a system library is not supported")
        blob, _ = compile_cuda_modules(tvm_api.pack_imports(module), compile_source)
        blob_path = Path(workspace_dir) / "devc.bin"
        blob_path.write_bytes(blob)
        asm_path = Path(workspace_dir) / "devc.s"
        asm_path.write_text(incbin_assembly(f"__tvm_ffi_{prefix}_library_bin", blob_path))
        return str(asm_path)

    return pack
