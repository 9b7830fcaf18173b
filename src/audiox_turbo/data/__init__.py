"""Data: manifests, loaders, shards, latent caches and the embedded world.

Only the manifest schema is imported here (no torch); import loaders from their modules.
"""

from audiox_turbo.data.manifest import (
    TASKS,
    ClipRecord,
    iter_manifest,
    manifest_root,
    read_manifest,
    write_manifest,
)

__all__ = [
    "TASKS",
    "ClipRecord",
    "iter_manifest",
    "manifest_root",
    "read_manifest",
    "write_manifest",
]
