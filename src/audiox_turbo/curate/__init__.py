"""Curation: raw recordings and videos → filtered, captioned, sharded training data.

Stage 1 (`collect`) decodes, cuts, measures and filters; stage 2 (`annotate`) runs expert
taggers, writes captions and verifies them; `export` writes shards, a manifest and a dataset
card. Every stage is a Ray Data pipeline (`engine`), resumable per input block.
"""
