"""Channel sets: nested-width (slimmable) backbones and per-input channel gating."""
