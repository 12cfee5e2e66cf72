"""GPTQ of one linear layer: `spec` is the declaration (no torch); `case` the algorithm and
its variants; `kernels` the fused Triton block; `upstream` llm-compressor's GPTQ."""
