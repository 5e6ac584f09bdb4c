"""spiral_tf/population/pbt.py: a PBT round and the lineage file, by the rules its docstring states."""

import json
import math
import random

import numpy as np
import pytest

from spiral_tf import run_dir
from spiral_tf.population import pbt

RANGES = pbt.DEFAULT_RANGES


def test_initial_values_are_log_uniform_in_deepmind_s_ranges():
  hypers = pbt.initial(num_members=4000, ranges=RANGES, seed=3)
  assert len(hypers) == 4000
  for name, (low, high) in RANGES.items():
    values = np.array([h[name] for h in hypers])
    assert values.min() >= low and values.max() <= high
    # Log-uniform: log(value) is uniform on [log low, log high]; each of 4 equal bins of it holds ¼
    # (binomial s.d. of a bin's fraction at n = 4000: 0.007, so 0.03 is > 4 s.d.).
    edges = np.linspace(math.log(low), math.log(high), 5)
    fractions = np.histogram(np.log(values), bins=edges)[0] / len(values)
    np.testing.assert_allclose(fractions, 0.25, atol=0.03)
  # The same seed gives the same population; another seed another one.
  assert pbt.initial(4, RANGES, seed=3) == hypers[:4]
  assert pbt.initial(4, RANGES, seed=4) != hypers[:4]


def test_a_range_that_is_not_positive_and_ordered_is_an_error_naming_it():
  with pytest.raises(ValueError, match='entropy_cost'):
    pbt.initial(2, {'entropy_cost': (0.0, 0.1)}, seed=0)
  with pytest.raises(ValueError, match='policy_learning_rate'):
    pbt.initial(2, {'policy_learning_rate': (3e-4, 1e-5)}, seed=0)
  with pytest.raises(ValueError, match='num_members'):
    pbt.initial(0, RANGES, seed=0)


@pytest.mark.parametrize(
    'num_ranked, expected', [(0, 0), (1, 0), (2, 1), (3, 1), (4, 1), (7, 1), (8, 2), (12, 3), (16, 4)]
)
def test_the_quarter_is_a_floor_of_n_over_4_but_at_least_one_and_at_most_half(num_ranked, expected):
  assert pbt.quarter(num_ranked) == expected


def test_ranking_is_worst_first_ties_by_index_and_unscored_members_left_out():
  fitness = {0: 0.5, 1: None, 2: -1.0, 3: 0.5, 4: float('nan'), 5: float('inf'), 6: 2.0}
  assert pbt.rank(fitness) == [2, 0, 3, 6]


def test_the_bottom_quarter_copies_a_member_of_the_top_quarter_with_perturbed_values():
  hypers = pbt.initial(8, RANGES, seed=0)
  fitness = {m: float(m) for m in range(8)}  # Member 7 is the best, member 0 the worst.
  decisions = pbt.decide(fitness, hypers, RANGES, random.Random(1))
  assert [d.member for d in decisions] == [0, 1]  # quarter(8) = 2
  for d in decisions:
    assert d.source in (6, 7)
    for name, value in d.hyperparameters.items():
      low, high = RANGES[name]
      ratio = value / hypers[d.source][name]
      # × 0.8 or × 1.25 of the copied (not the member's own) value, unless clipped to the range.
      assert np.isclose(ratio, 0.8) or np.isclose(ratio, 1.25) or value in (low, high)
  # A pure function of its inputs and the rng.
  assert pbt.decide(fitness, hypers, RANGES, random.Random(1)) == decisions


def test_both_factors_occur_and_a_value_at_the_edge_stays_in_range():
  rng = random.Random(0)
  ratios = set()
  for _ in range(200):
    out = pbt.perturb({'entropy_cost': 0.01}, RANGES, rng)
    ratios.add(round(out['entropy_cost'] / 0.01, 6))
  assert ratios == {0.8, 1.25}
  high = RANGES['entropy_cost'][1]
  low = RANGES['entropy_cost'][0]
  for _ in range(50):
    assert pbt.perturb({'entropy_cost': high}, RANGES, rng)['entropy_cost'] <= high
    assert pbt.perturb({'entropy_cost': low}, RANGES, rng)['entropy_cost'] >= low


def test_a_population_of_three_with_one_bad_member_copies_the_best_into_it():
  hypers = [{'policy_learning_rate': 1e-5, 'entropy_cost': 0.1}] + pbt.initial(2, RANGES, seed=5)
  decisions = pbt.decide({0: -3.0, 1: 0.4, 2: 1.2}, hypers, RANGES, random.Random(0))
  assert len(decisions) == 1
  (d,) = decisions
  assert (d.member, d.source) == (0, 2)


def test_no_round_with_fewer_than_two_ranked_members_and_unranked_members_are_never_touched():
  hypers = pbt.initial(4, RANGES, seed=0)
  assert pbt.decide({0: 1.0}, hypers, RANGES, random.Random(0)) == []
  assert pbt.decide({0: 1.0, 1: None, 2: float('nan')}, hypers, RANGES, random.Random(0)) == []
  decisions = pbt.decide({0: 1.0, 1: None, 2: -1.0, 3: None}, hypers, RANGES, random.Random(0))
  assert [(d.member, d.source) for d in decisions] == [(2, 0)]
  with pytest.raises(ValueError, match='member 9'):
    pbt.decide({9: 1.0, 0: 0.0}, hypers, RANGES, random.Random(0))


def test_the_lineage_holds_one_line_per_decision_and_a_torn_last_line_is_skipped(tmp_path):
  lineage = pbt.Lineage(run_dir.PopulationDir(tmp_path / 'population').lineage)
  assert lineage.read() == []
  hypers = pbt.initial(3, RANGES, seed=1)
  fitness = {0: -1.0, 1: None, 2: 2.5}
  decisions = pbt.decide(fitness, hypers, RANGES, random.Random(2))
  lineage.append(120, decisions, fitness)
  lineage.append(240, [], fitness)  # A round without a decision writes nothing.
  records = lineage.read()
  assert records == [
      {
          'step': 120,
          'member': 0,
          'copied_from': 2,
          'hyperparameters': decisions[0].hyperparameters,
          'fitness': {'0': -1.0, '1': None, '2': 2.5},
      }
  ]
  with open(lineage.path, 'a') as f:  # A process killed while appending the next line.
    f.write('{"step": 360, "memb')
  assert lineage.read() == records
  with open(lineage.path, 'w') as f:  # A damaged line before the end is not silently dropped.
    f.write('{"step": 1\n' + json.dumps(records[0]) + '\n')
  with pytest.raises(ValueError, match=r'pbt\.jsonl: line 1'):
    lineage.read()
