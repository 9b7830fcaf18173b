"""The `official` variant: the released AudioX-Turbo network, its samplers and converter.

Written from the facts in `official/ARCHITECTURE.md` (shared spec); nothing here imports torch at
package import time, so the CLI can register `convert official` cheaply.
"""
