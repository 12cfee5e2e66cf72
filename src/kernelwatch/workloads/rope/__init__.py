"""RoPE: rotary position embedding of one attention layer's queries and keys. `spec` is the
declaration (no torch); `case` builds and runs a case; `kernels` is the project's Triton
kernel."""
