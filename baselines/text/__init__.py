"""Shared machinery of the SD-family text-driven baselines (Pix2Video, RAVE, FateZero, Spacetime).

- ``prompts``: which source/target prompts a method uses and how they were obtained (override file, dataset,
  BLIP caption + instruction rewrite), cached as JSON.
- ``ddim``: DDIM schedule from a DDIMScheduler config, the deterministic DDIM step, its inversion, sampling.
- ``attention``: cross-frame / injection attention through diffusers' attention-processor API.
- ``models``: SD components by hub id or path, tiny random stand-ins of the same classes, full-size random.
- ``sd``: small helpers over those components (text embeddings, VAE encode/decode, depth maps).
"""
