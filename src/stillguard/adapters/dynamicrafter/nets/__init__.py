"""DynamiCrafter's networks, written here because diffusers lacks them, with the official parameter
names (each file names its official source): the video UNet (:mod:`.unet`, its attention blocks in
:mod:`.attention`), the SD VAE (:mod:`.vae`), the OpenCLIP towers and the Resampler (:mod:`.clip`),
and the whole ``LatentVisualDiffusion`` (:mod:`.model`)."""
