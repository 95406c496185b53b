"""Own implementations of target architectures that diffusers lacks (key-compatible with the official weights)."""
