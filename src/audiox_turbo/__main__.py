"""`python -m audiox_turbo` runs the command line."""

from audiox_turbo.cli import main

main()
