"""The Llama decoder layer: `spec` is the declaration (no torch); `case` builds the layer
with its backend and variant; `model` is the layer in plain PyTorch and TE."""
