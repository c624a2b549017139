"""Building bundles: heron-lite's PyTorch towers, the e5 reader, ONNX export, LiT-head training.

Needs the `build` extra (torch, transformers, onnx and the weight packages). Running a bundle
(`heron.models.encoder`) never imports this package, so a base install indexes and searches with
any bundle it has.
"""
