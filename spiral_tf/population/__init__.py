"""A population of SPIRAL agents and population-based training over their hyper-parameters (issue 18).

  population.py   `--role=all --population_size=N`: the members' processes, the PBT rounds, restarts, resume
  pbt.py          the decisions of a PBT round (rank, exploit, explore) and the `pbt.jsonl` lineage
  checkpoints.py  the exploit on disk: a member's checkpoints replaced by a copy of another's latest

The layout of a population's directory is spiral_tf/run_dir.py's (PopulationDir); the shared discriminator's
process is spiral_tf/distributed/shared_discriminator.py (`--role=discriminator`), started by population.py.
Across hosts, each host's population.py runs its `--population_members` and one of them leads (decides
the rounds, runs the shared D), all through files in the shared root_dir. Nothing in this package imports
TensorFlow; this file imports nothing.
"""
