"""Evaluation: `metrics` (FD, FAD∞, KAD, KL, IS, CLAP score, A/V sync), `embedders` (interface
and registry), `vggish`, `panns`, `passt` (published embedders) and their `features` front ends.

Nothing heavy is imported here; import the submodules you need.
"""
