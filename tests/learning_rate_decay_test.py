"""--policy_learning_rate_decay: the learner's schedule against the formula, and the flag's validation.

The learner sets the policy optimizer's rate to `decayed_learning_rate(...)` before every update, from the
frames trained so far; the check that it does so in a run is the `policy_learning_rate` TensorBoard scalar
of docs/results.md's R3 runs.
"""

import numpy as np
import pytest

from spiral_tf import config as config_lib
from spiral_tf.distributed import learner


def test_linear_decay_falls_from_the_base_rate_to_zero_at_max_frames():
  base, max_frames = 3e-4, 216_000
  frames = np.array([0, 144, 54_000, 108_000, 215_856, 216_000, 300_000])
  expected = base * np.clip((max_frames - frames) / max_frames, 0, None)  # Rate ∝ frames left.
  got = [learner.decayed_learning_rate(base, 'linear', int(f), max_frames) for f in frames]
  np.testing.assert_allclose(got, expected, rtol=1e-12, atol=0)
  assert got[0] == base and got[3] == pytest.approx(base / 2) and got[-2] == got[-1] == 0


def test_no_decay_keeps_the_base_rate_whatever_the_frames():
  assert {learner.decayed_learning_rate(1e-4, 'none', f, 0) for f in (0, 10, 10**9)} == {1e-4}


def test_an_unknown_decay_names_the_flag():
  with pytest.raises(ValueError, match='--policy_learning_rate_decay=.cosine.'):
    learner.decayed_learning_rate(1e-4, 'cosine', 0, 100)


def test_linear_decay_needs_max_frames(tmp_path):
  config = config_lib.Config(root_dir=str(tmp_path), policy_learning_rate_decay='linear', max_frames=0)
  with pytest.raises(config_lib.ConfigError, match=r'^--policy_learning_rate_decay: .*--max_frames'):
    config_lib.validate(config)
  config_lib.validate(
      config_lib.Config(root_dir=str(tmp_path), policy_learning_rate_decay='linear', max_frames=1000)
  )
  with pytest.raises(config_lib.ConfigError, match=r'^--policy_learning_rate_decay: .*not one of'):
    config_lib.validate(config_lib.Config(root_dir=str(tmp_path), policy_learning_rate_decay='step'))
