"""lncompile's model zoo: the lightweight-network families, in PyTorch, with their scaling knobs.

    >>> from lncompile import graphs
    >>> model = graphs.create("mobilenet_v2", width_mult=0.5)
"""

from .registry import ModelSpec, Published, create, names, register, spec

__all__ = ["ModelSpec", "Published", "create", "names", "register", "spec"]
