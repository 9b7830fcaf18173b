"""Training: the engine (`trainer`, driven by a `task`) and the codec, teacher and student tasks.

Nothing heavy is imported here, so `audiox_turbo.cli.train` stays fast to load.
"""
