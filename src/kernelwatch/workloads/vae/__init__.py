"""The ViT VAE: `spec` is the declaration (no torch); `case` builds a part with its variant;
`model` is the encoder and decoder; `images` the photographs and their quality."""
