"""GPT-2 generate: `spec` is the declaration (no torch); `case` builds the variants'
generators; `generators`, `onnx` and `quantize` are their parts."""
