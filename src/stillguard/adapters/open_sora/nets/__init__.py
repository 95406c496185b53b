"""Open-Sora 1.2's networks, written here because diffusers lacks them, key-compatible with the
official weights: STDiT3 (:mod:`.stdit3`, its layers in :mod:`.layers`) and the video VAE
(:mod:`.vae`: the SDXL image VAE plus the temporal VAE of :mod:`.vae_temporal`)."""
