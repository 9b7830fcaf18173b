"""Recorded and sampled sound sources of the world (soundfonts, prompts, espeak-ng, animals,
rooms): where each comes from, how to fetch it, and one module per source that renders it."""
