"""Frontends: PyTorch modules (via torch.export) and ONNX files become lncompile IR."""
