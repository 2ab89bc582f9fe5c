"""lncompile: a hardware-aware compiler for lightweight neural networks."""

__version__ = "0.1.0"
