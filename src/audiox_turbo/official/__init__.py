"""The `official` variant: the released AudioX-Turbo network, its samplers and converter.

Written from the facts of the released network's specification ("the spec", ARCHITECTURE.md in
the project's shared folder, `../shared/official/`, beside the parity fixtures; its § numbers are
cited in these modules). Nothing here imports torch at package import time.
"""
