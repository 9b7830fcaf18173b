"""Training: the engine (`trainer`, driven by a `task`), codec and teacher tasks, their CLI.

Nothing heavy is imported here, so `audiox_turbo.train.cli` stays fast to load.
"""
