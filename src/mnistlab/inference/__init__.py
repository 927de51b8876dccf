"""Use a trained model: preprocess real images, predict, export to ONNX, serve a drawing page.

Layering: this package builds on `models`, `data`, `engine` and `config`; only the CLI (and
`mnistlab.pretrained.load`, to share the safe checkpoint loader) imports it.

- `preprocess`: any PNG/JPEG/BMP/GIF/WebP -> uint8 [28, 28] the MNIST way;
- `checkpoint`: load a checkpoint with ``weights_only=True``, one-line errors;
- `predict`: digits, probabilities and top-3 for a batch; file/dir/glob expansion;
- `export`: ONNX export checked against PyTorch in ONNX Runtime, latency (extra ``[onnx]``);
- `server`: the draw-a-digit page and its JSON endpoint (standard library only).
"""
