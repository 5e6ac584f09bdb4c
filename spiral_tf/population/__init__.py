"""A population of SPIRAL agents and population-based training over their hyper-parameters (issue 18).

  pbt.py   the decisions of a PBT round (rank, exploit, explore) and the `pbt.jsonl` lineage (no TensorFlow)

This file imports nothing.
"""
