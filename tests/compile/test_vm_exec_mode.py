"""How a library runs ``main`` (``tvm_api.vm_exec_mode``): CPU builds compile the VM's instructions to machine
code; a traceable build keeps the bytecode interpreter, whose kernel calls an instrument can see (in-situ
tuning replays them). Both give the same outputs, and the compiled library exports and loads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from lncompile.api import compile_imported
from lncompile.backend import tvm_api
from lncompile.frontend import import_model
from lncompile.runtime import load
from tests.conftest import relative_error


class ConvHead(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.dw, self.fc = nn.Conv2d(8, 16, 3, padding=1), nn.Conv2d(16, 16, 3, groups=16), nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.dw(torch.relu(self.conv(x)))).mean((2, 3)))


def test_compiled_main_matches_bytecode_and_pytorch_and_hides_its_calls(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net, x = ConvHead().eval(), np.random.default_rng(0).standard_normal((1, 8, 12, 12)).astype(np.float32)
    assert tvm_api.vm_exec_mode("cpu", traceable=False) == "compiled"
    assert tvm_api.vm_exec_mode("cpu", traceable=True) == tvm_api.vm_exec_mode("cuda", False) == "bytecode"
    compiled = compile_imported(import_model(net, x), "x86", tuning_log=False)
    traced = compile_imported(import_model(net, x), "x86", tuning_log=False, traceable=True)
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    assert relative_error(compiled(x), expected) <= 1e-5
    np.testing.assert_array_equal(compiled(x), traced(x))
    names = [name for name, _, _ in traced.kernel_calls(x)]
    assert names and not any(name.startswith("vm.builtin.") for name in names)
    with pytest.raises(RuntimeError, match="compiled"):
        compiled.kernel_calls(x)
    library = compiled.export(tmp_path / "convhead.so")
    np.testing.assert_array_equal(load(library)(x), compiled(x))
