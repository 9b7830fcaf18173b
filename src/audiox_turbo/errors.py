"""User-facing errors: one line, naming the file and the problem."""

from __future__ import annotations


class AudioXError(Exception):
    """An error caused by user input (bad file, bad option); the CLI prints it and exits 2."""


class MediaError(AudioXError):
    """A media file is missing, empty, corrupt or unsupported."""


class ModelLoadError(AudioXError):
    """A model directory is missing files or its weights do not match its config."""
