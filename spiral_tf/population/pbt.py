"""Population-based training's decisions (Jaderberg et al. 2017, as SPIRAL used it): who copies whom.

SPIRAL trained every agent in a population and let PBT choose the policy learning rate and the entropy
cost, with D's score of a member's renders as its fitness. This module is the arithmetic of that choice —
no TensorFlow, no processes, no files but the lineage — so that it can be checked on its own and used by
whatever runs the members:

  initial     each member's starting hyper-parameters, drawn log-uniformly from their ranges
  decide      at a PBT round, from every member's fitness: the bottom quarter each copy a random member of
              the top quarter (exploit) and multiply each copied hyper-parameter by 0.8 or 1.25 (explore)
  Lineage     `pbt.jsonl`, one line per decision (step, member, copied from, new values, fitnesses), read
              back on resume

Rules (each written down because a population run depends on it):
  * The quarter is max(1, floor(N / 4)) members: a population of 2 or 3 still exploits (one copies the
    best); a population of 1 never does. With 2·quarter > N the two ends would overlap, so the quarter is
    also at most floor(N / 2).
  * A member without a fitness (no renders scored yet, or a non-finite score) is not ranked: it neither
    copies nor is copied. A round needs at least two ranked members.
  * Ties in fitness are ranked by member index (lower first among equals), so a round is a pure function
    of (fitness, hyper-parameters, rng).
  * Higher fitness is better; for a loss such as the held-out l2, pass its negative.
  * Explore multiplies each hyper-parameter of the *copied* values by 0.8 or 1.25, independently, and
    clips to the hyper-parameter's range (PBT's perturbation; no value ever leaves its range).

Usage:
  ranges = pbt.DEFAULT_RANGES                 # DeepMind's: lr [1e-5, 3e-4], entropy [2e-3, 1e-1]
  hypers = pbt.initial(num_members=4, ranges=ranges, seed=0)  # [{'policy_learning_rate': …, …}, …]
  rng = random.Random(seed)
  fitness = {0: 1.3, 1: -0.2, 2: 0.7, 3: 0.9}
  decisions = pbt.decide(fitness, hypers, ranges, rng)
  for d in decisions:  # d.member takes d.source's weights and optimizer state, and d.hyperparameters
    hypers[d.member] = d.hyperparameters
  lineage = pbt.Lineage(run_dir.PopulationDir(root).lineage)
  lineage.append(step, decisions, fitness)
  lineage.read()                          # every line written, oldest first
"""

import dataclasses
import json
import math
import os
import random
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

# The two hyper-parameters SPIRAL's PBT searched over, and DeepMind's ranges for them (issue 18).
DEFAULT_RANGES: Dict[str, Tuple[float, float]] = {
    'policy_learning_rate': (1e-5, 3e-4),
    'entropy_cost': (2e-3, 1e-1),
}
PERTURB_FACTORS = (0.8, 1.25)


@dataclasses.dataclass(frozen=True)
class Decision:
  """`member` takes `source`'s weights and optimizer state, and `hyperparameters` (perturbed)."""

  member: int
  source: int
  hyperparameters: Dict[str, float]


def _check_ranges(ranges: Mapping[str, Tuple[float, float]]):
  for name, (low, high) in ranges.items():
    if not 0 < low <= high:
      raise ValueError(f'pbt range of {name}: ({low}, {high}) must satisfy 0 < low ≤ high (log-uniform)')


def initial(num_members: int, ranges: Mapping[str, Tuple[float, float]], seed: int) -> List[Dict[str, float]]:
  """Each member's starting values, log-uniform in [low, high] per hyper-parameter, from `seed`."""
  if num_members < 1:
    raise ValueError(f'num_members: {num_members} must be ≥ 1')
  _check_ranges(ranges)
  rng = random.Random(seed)
  return [
      {name: math.exp(rng.uniform(math.log(low), math.log(high))) for name, (low, high) in ranges.items()}
      for _ in range(num_members)
  ]


def quarter(num_ranked: int) -> int:
  """How many members are in the bottom (and in the top) quarter of `num_ranked` (module docstring)."""
  return min(max(1, num_ranked // 4), num_ranked // 2)


def rank(fitness: Mapping[int, Optional[float]]) -> List[int]:
  """Members with a finite fitness, worst first; ties by member index."""
  ranked = [m for m, f in fitness.items() if f is not None and math.isfinite(f)]
  return sorted(ranked, key=lambda m: (fitness[m], m))


def perturb(
    values: Mapping[str, float], ranges: Mapping[str, Tuple[float, float]], rng: random.Random
) -> Dict[str, float]:
  """Each value × 0.8 or × 1.25 (one coin per hyper-parameter), clipped to its range."""
  out = {}
  for name, value in values.items():
    low, high = ranges[name]
    out[name] = min(max(value * rng.choice(PERTURB_FACTORS), low), high)
  return out


def decide(
    fitness: Mapping[int, Optional[float]],
    hyperparameters: Sequence[Mapping[str, float]],
    ranges: Mapping[str, Tuple[float, float]],
    rng: random.Random,
) -> List[Decision]:
  """One PBT round: a Decision for each member of the bottom quarter (none if < 2 members are ranked)."""
  _check_ranges(ranges)
  for m in fitness:
    if not 0 <= m < len(hyperparameters):
      raise ValueError(f'fitness of member {m}: the population has {len(hyperparameters)} members')
  ranked = rank(fitness)
  if len(ranked) < 2:
    return []
  q = quarter(len(ranked))
  bottom, top = ranked[:q], ranked[-q:]
  decisions = []
  for member in bottom:
    source = rng.choice(top)
    decisions.append(Decision(member, source, perturb(hyperparameters[source], ranges, rng)))
  return decisions


class Lineage:
  """`pbt.jsonl`: one JSON line per decision, appended and flushed to disk as it is made.

  A line: {"step": learner step of the round, "member": i, "copied_from": j, "hyperparameters": {...},
  "fitness": {"0": f0, ...}} (the round's fitnesses, null for an unranked member), and "checkpoint": the
  name of the source's checkpoint that was copied (ckpt-<its learner step>) when the caller gives it.
  A process killed in the middle of a write leaves at most one torn last line; `read` skips it (and only a
  last line: a torn line before the end means the file was damaged otherwise, and is an error naming the
  file and line).
  """

  def __init__(self, path: str):
    self.path = os.fspath(path)

  def append(
      self,
      step: int,
      decisions: Sequence[Decision],
      fitness: Mapping[int, Optional[float]],
      checkpoints: Optional[Mapping[int, str]] = None,
  ):
    if not decisions:
      return
    checkpoints = checkpoints or {}
    scores = {str(m): (f if f is not None and math.isfinite(f) else None) for m, f in sorted(fitness.items())}
    lines = [
        json.dumps(
            {
                'step': int(step),
                'member': d.member,
                'copied_from': d.source,
                'hyperparameters': d.hyperparameters,
                'fitness': scores,
                **({'checkpoint': checkpoints[d.member]} if d.member in checkpoints else {}),
            }
        )
        for d in decisions
    ]
    os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
    with open(self.path, 'a') as f:
      f.write(''.join(line + '\n' for line in lines))
      f.flush()
      os.fsync(f.fileno())

  def read(self) -> List[dict]:
    if not os.path.exists(self.path):
      return []
    with open(self.path) as f:
      lines = f.read().split('\n')
    records = []
    for number, line in enumerate(lines, start=1):
      if not line:
        continue
      try:
        records.append(json.loads(line))
      except json.JSONDecodeError as error:
        if number == len(lines):  # The last line, not newline-terminated: a write cut short.
          break
        raise ValueError(f'{self.path}: line {number} is not JSON ({error})') from None
    return records
