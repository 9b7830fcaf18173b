"""The embedded multimodal world: captioned music, effects, voices and synchronised video scenes.

Kept import-free so the CLI stays fast; use `audiox_turbo.data.world.generate.generate_world`.
"""
