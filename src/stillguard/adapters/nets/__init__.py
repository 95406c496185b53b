"""Own implementations of target architectures that diffusers lacks (Open-Sora 1.2, DynamiCrafter),
key-compatible with the official weights."""
