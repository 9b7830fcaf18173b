"""Training: the Accelerate engine (`loop`), codec and teacher tasks, and their CLI.

Nothing heavy is imported here, so `audiox_turbo.train.cli` stays fast to load.
"""
