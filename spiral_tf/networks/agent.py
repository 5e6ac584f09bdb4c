"""The SPIRAL policy and critic: conv torso, LSTM core, autoregressive action head (SEED RL style).

The architecture follows DeepMind's released agents (docs/design.md §4). Everything stateful is explicit: the
caller keeps the `AgentState` (LSTM state and previous action) and passes it back in.

  torso   [canvas (, target), y, x] → Conv 5×5 + bias(MLP(prev-action embedding)) + bias(MLP(noise))
          → ReLU → 3 × Conv 4×4/2 → Conv 3×3 → residual blocks → flatten → ReLU → Linear z
  core    LSTM, reset (with the previous action) at FIRST
  value   Linear 1 on the core output
  policy  autoregressive over sub-actions in `order`: location keys (grid² values) are decoded by a
          deconvolutional head to G×G logits, the others by a linear head; after each sub-action
          z ← ReLU(z + MLP(concat(z, Linear16(embedding(sample))))).

Usage:
  agent = Agent(env.action_spec(), env.observation_spec(), size='tiny')   # or an AgentSize(...)
  state = agent.initial_state(batch_size)
  output, state = agent.step(step_type, observation, state)     # output.action {k: int32 [B]}
  output, state = agent.step(step_type, observation, state, greedy=True)   # arg-max decoding
  agent = Agent(..., precision='mixed_bfloat16')   # bfloat16 compute, float32 weights and outputs
  unrolled = agent.unroll(step_type, observation, action, core_state)   # time-major [T, B]
  print(agent.num_parameters())
"""

import collections
import math
from typing import Mapping, NamedTuple, Optional, Sequence

import dm_env
import tensorflow as tf

from spiral_tf.networks import precision as precision_lib

# DeepMind's painter order: the pen first decides whether to paint, then where, then how.
PAINTER_ORDER = ('flag', 'end', 'control', 'size', 'pressure', 'red', 'green', 'blue')
# Sub-actions decoded by the deconvolutional location head when their spec is a square grid.
DEFAULT_LOCATION_KEYS = ('end', 'control', 'location')


class AgentSize(NamedTuple):
  """Widths of the networks; `deepmind` is the released architecture."""

  torso_channels: int
  torso_res_blocks: int
  z_dim: int
  lstm_size: int
  head_channels: int
  head_res_blocks: int
  embed_size: int = 16
  action_mlp: tuple = (64, 32)  # Followed by a layer of torso_channels (the per-example conv bias).
  autoregressive_mlp: tuple = (16, 32)  # Followed by a layer of lstm_size (the z update).


SIZES = {
    'deepmind': AgentSize(
        torso_channels=32, torso_res_blocks=8, z_dim=256, lstm_size=256, head_channels=32, head_res_blocks=8
    ),
    'tiny': AgentSize(
        torso_channels=16, torso_res_blocks=2, z_dim=64, lstm_size=64, head_channels=16, head_res_blocks=2
    ),
}

AgentState = collections.namedtuple('AgentState', ['core', 'prev_action'])
AgentOutput = collections.namedtuple('AgentOutput', ['action', 'log_prob', 'value'])
UnrollOutput = collections.namedtuple('UnrollOutput', ['log_prob', 'entropy', 'value', 'core_output'])

# The last layer of every policy head starts with weights this small, so the initial policy is close to
# uniform over each sub-action (logits ≈ ±0.1): early exploration covers the canvas instead of a few
# locations that happen to score high under a random initialisation (urw7rs/spiralpp does the same).
HEAD_INIT_STDDEV = 0.01


def _head_initializer():
  return tf.keras.initializers.RandomNormal(stddev=HEAD_INIT_STDDEV)


def _mlp(hidden: Sequence[int], output: int, name: str) -> tf.keras.Sequential:
  """ReLU between layers, none after the last (Sonnet's MLP default)."""
  layers = [tf.keras.layers.Dense(n, activation='relu', name=f'{name}_{i}') for i, n in enumerate(hidden)]
  layers.append(tf.keras.layers.Dense(output, name=f'{name}_out'))
  return tf.keras.Sequential(layers, name=name)


class ResidualBlock(tf.keras.layers.Layer):
  """x + Conv1×1(ReLU(Conv3×3(ReLU(x))))."""

  def __init__(self, channels: int, **kwargs):
    super().__init__(**kwargs)
    self._conv3 = tf.keras.layers.Conv2D(channels, 3, padding='same')
    self._conv1 = tf.keras.layers.Conv2D(channels, 1, padding='same')

  def call(self, x):
    return x + self._conv1(tf.nn.relu(self._conv3(tf.nn.relu(x))))


class LocationHead(tf.keras.layers.Layer):
  """z → G×G logits: reshape to 4×4×(z/16) → Conv 3×3 → res blocks → log2(G/4) × ConvT 4×4/2 → Conv 1."""

  def __init__(self, grid: int, channels: int, res_blocks: int, **kwargs):
    super().__init__(**kwargs)
    self._grid = grid
    self._conv_in = tf.keras.layers.Conv2D(channels, 3, padding='same')
    self._blocks = [ResidualBlock(channels) for _ in range(res_blocks)]
    self._upsample = [
        tf.keras.layers.Conv2DTranspose(channels, 4, strides=2, padding='same', activation='relu')
        for _ in range(int(math.log2(grid // 4)))
    ]
    self._conv_out = tf.keras.layers.Conv2D(1, 3, padding='same', kernel_initializer=_head_initializer())

  def call(self, z):
    x = tf.reshape(z, [-1, 4, 4, z.shape[-1] // 16])
    x = self._conv_in(x)
    for block in self._blocks:
      x = block(x)
    for layer in self._upsample:
      x = layer(x)
    return tf.reshape(self._conv_out(x), [-1, self._grid * self._grid])


def _grid_of(key: str, num_values: int) -> int:
  """G for a location key with G² values; G must be 4·2^k (the head doubles a 4×4 map)."""
  grid = math.isqrt(num_values)
  if grid * grid != num_values or grid < 4 or grid & (grid - 1):
    raise ValueError(
        f'action {key!r}: a location sub-action needs G×G values with G = 4·2^k '
        f'(16, 64, 256, 1024, ...), got {num_values}'
    )
  return grid


class Agent(tf.Module):
  """Policy + critic over a dict action spec (see module docstring)."""

  def __init__(
      self,
      action_spec: Mapping[str, dm_env.specs.DiscreteArray],
      observation_spec: Mapping,
      size='deepmind',
      order: Optional[Sequence[str]] = None,
      conditional: bool = False,
      location_keys: Sequence[str] = DEFAULT_LOCATION_KEYS,
      precision: str = 'float32',
      name: str = 'agent',
  ):
    super().__init__(name=name)
    if isinstance(size, AgentSize):
      sizes = size
    elif size in SIZES:
      sizes = SIZES[size]
    else:
      raise ValueError(f'Agent size {size!r} is not one of {sorted(SIZES)} (or an AgentSize)')
    self._size = sizes
    if sizes.lstm_size % 16:
      raise ValueError(f'lstm_size {sizes.lstm_size} must be divisible by 16 (4×4 location map)')
    self._num_values = {k: int(s.num_values) for k, s in action_spec.items()}
    if order is None:
      order = (
          tuple(k for k in PAINTER_ORDER if k in action_spec)
          if set(action_spec) <= set(PAINTER_ORDER)
          else tuple(action_spec)
      )
    order = tuple(order)
    if sorted(order) != sorted(action_spec):
      raise ValueError(f'order {order} must name every action key {tuple(action_spec)} once')
    self._order = order
    self._grids = {k: _grid_of(k, n) for k, n in self._num_values.items() if k in location_keys}
    self._conditional = conditional
    canvas = observation_spec['canvas']
    if len(canvas.shape) != 3 or canvas.shape[0] != canvas.shape[1] or canvas.shape[0] % 8:
      raise ValueError(f'observation canvas shape {canvas.shape}: need [W, W, C] with W a multiple of 8')
    if conditional and 'target' not in observation_spec:
      raise ValueError('conditional=True needs a `target` observation (wrap the env in ConditionalTargets)')
    self._canvas_shape = tuple(canvas.shape)
    self._use_noise = 'noise_sample' in observation_spec
    self._noise_dim = observation_spec['noise_sample'].shape[-1] if self._use_noise else 0
    # Activations are in this dtype between layers; logits, values, the LSTM state and everything the
    # agent returns are float32 (spiral_tf/networks/precision.py).
    self._dtype = precision_lib.compute_dtype(precision)
    with precision_lib.layers_in(precision):
      self._make_layers(sizes, order)
    self._build()

  def _make_layers(self, sizes, order):
    ch = sizes.torso_channels
    self._conv_in = tf.keras.layers.Conv2D(ch, 5, padding='same', name='torso_conv_in')
    self._prev_action_embed = {k: tf.keras.layers.Dense(sizes.embed_size, name=f'prev_{k}') for k in order}
    self._prev_action_mlp = _mlp(sizes.action_mlp, ch, 'prev_action_mlp')
    self._noise_mlp = _mlp(sizes.action_mlp, ch, 'noise_mlp') if self._use_noise else None
    self._downsample = [
        tf.keras.layers.Conv2D(ch, 4, strides=2, padding='same', activation='relu', name=f'torso_down_{i}')
        for i in range(3)
    ]
    self._conv_mid = tf.keras.layers.Conv2D(ch, 3, padding='same', name='torso_conv_mid')
    self._torso_blocks = [ResidualBlock(ch, name=f'torso_res_{i}') for i in range(sizes.torso_res_blocks)]
    self._torso_out = tf.keras.layers.Dense(sizes.z_dim, name='torso_out')
    self._core = tf.keras.layers.LSTMCell(sizes.lstm_size, name='core')
    # The baseline is one small matrix product: computed in float32 (V-trace's targets are differences
    # of values; bfloat16's 3 significant digits would be noise in them).
    self._value = tf.keras.layers.Dense(1, dtype='float32', name='value')
    self._heads = {
        k: (
            LocationHead(self._grids[k], sizes.head_channels, sizes.head_res_blocks, name=f'head_{k}')
            if k in self._grids
            else tf.keras.layers.Dense(n, kernel_initializer=_head_initializer(), name=f'head_{k}')
        )
        for k, n in ((k, self._num_values[k]) for k in order)
    }
    # The last sub-action conditions nothing, so it has no z update.
    self._sample_embed = {k: tf.keras.layers.Dense(sizes.embed_size, name=f'sample_{k}') for k in order[:-1]}
    self._z_update = {k: _mlp(sizes.autoregressive_mlp, sizes.lstm_size, f'z_update_{k}') for k in order[:-1]}

  # --- public API ------------------------------------------------------------------------------------

  @property
  def order(self) -> tuple:
    return self._order

  @property
  def lstm_size(self) -> int:
    return self._size.lstm_size

  def num_parameters(self) -> int:
    return int(sum(v.shape.num_elements() for v in self.trainable_variables))

  def initial_state(self, batch_size: int) -> AgentState:
    zeros = tf.zeros([batch_size, self._size.lstm_size])
    return AgentState(
        core={'h': zeros, 'c': zeros}, prev_action={k: tf.zeros([batch_size], tf.int32) for k in self._order}
    )

  def step(self, step_type, observation, state: AgentState, greedy: bool = False):
    """One batched step: samples an action (greedy: the most likely value of each sub-action, given the
    ones chosen before it). Returns (AgentOutput, new AgentState)."""
    first = tf.equal(tf.convert_to_tensor(step_type), int(dm_env.StepType.FIRST))
    prev_action = {k: tf.where(first, 0, tf.cast(state.prev_action[k], tf.int32)) for k in self._order}
    torso = self._torso(observation, prev_action, first)
    core_out, core = self._core_step(torso, state.core, first)
    action, log_prob, _ = self._policy(core_out, given_action=None, greedy=greedy)
    value = self._value(core_out)[:, 0]  # float32: the value layer computes in float32.
    return AgentOutput(action, log_prob, value), AgentState(core, action)

  def unroll(self, step_type, observation, action, core_state, prev_action=None) -> UnrollOutput:
    """Teacher-forced pass over [T, B] sequences; log-probs and entropies per sub-action, unmasked.

    The torso and heads run once on all T·B frames; only the LSTM steps through time. `prev_action`
    (action before step 0, {k: [B]}) only matters when step 0 is not FIRST.
    """
    step_type = tf.convert_to_tensor(step_type)
    num_steps, batch = step_type.shape[0], tf.shape(step_type)[1]
    first = tf.equal(step_type, int(dm_env.StepType.FIRST))
    if prev_action is None:
      prev_action = {k: tf.zeros([batch], tf.int32) for k in self._order}
    previous = {
        k: tf.where(
            first,
            0,
            tf.concat([tf.cast(prev_action[k], tf.int32)[None], tf.cast(action[k][:-1], tf.int32)], 0),
        )
        for k in self._order
    }
    merge = lambda x: tf.reshape(x, tf.concat([[-1], tf.shape(x)[2:]], 0))
    torso = self._torso(
        tf.nest.map_structure(merge, self._used(observation)),
        {k: merge(v) for k, v in previous.items()},
        merge(first),
    )
    torso = tf.reshape(torso, [num_steps, batch, -1])
    core, outputs = core_state, []
    for t in range(num_steps):
      out, core = self._core_step(torso[t], core, first[t])
      outputs.append(out)
    core_out = merge(tf.stack(outputs))
    _, log_prob, entropy = self._policy(
        core_out, {k: merge(tf.cast(action[k], tf.int32)) for k in self._order}
    )
    split = lambda x: tf.reshape(x, [num_steps, batch])
    return UnrollOutput(
        log_prob={k: split(v) for k, v in log_prob.items()},
        entropy={k: split(v) for k, v in entropy.items()},
        value=split(self._value(core_out)[:, 0]),
        core_output=tf.cast(tf.reshape(core_out, [num_steps, batch, -1]), tf.float32),
    )

  # --- pieces ----------------------------------------------------------------------------------------

  def _used(self, observation):
    keys = ['canvas', 'action_mask'] + (['noise_sample'] if self._use_noise else [])
    keys += ['target'] if self._conditional else []
    return {k: observation[k] for k in keys}

  def _embedding(self, key, value):
    """Locations as their (y, x) in [−1, 1]; the other sub-actions one-hot."""
    if key in self._grids:
      grid = self._grids[key]
      yx = tf.stack([value // grid, value % grid], -1)
      return tf.cast(yx, tf.float32) * (2.0 / (grid - 1)) - 1.0
    return tf.one_hot(value, self._num_values[key])

  def _torso(self, observation, prev_action, first):
    canvas = tf.convert_to_tensor(observation['canvas'], tf.float32)
    images = [canvas] + ([tf.cast(observation['target'], tf.float32)] if self._conditional else [])
    batch, width = tf.shape(canvas)[0], canvas.shape[1]
    line = tf.linspace(-1.0, 1.0, width)
    yx = tf.stack(tf.meshgrid(line, line, indexing='ij'), -1)
    images.append(tf.tile(yx[None], [batch, 1, 1, 1]))
    x = self._conv_in(tf.concat(images, -1))
    # The previous action only counts where it had an effect, and not at all at FIRST.
    not_first = 1.0 - tf.cast(first, self._dtype)[:, None]
    embeddings = [
        self._prev_action_embed[k](self._embedding(k, prev_action[k]))
        * tf.cast(observation['action_mask'][k], self._dtype)[:, None]
        * not_first
        for k in self._order
    ]
    bias = self._prev_action_mlp(tf.concat(embeddings, -1))
    if self._use_noise:
      bias += self._noise_mlp(tf.cast(observation['noise_sample'], tf.float32))
    x = tf.nn.relu(x + bias[:, None, None, :])
    for layer in self._downsample:
      x = layer(x)
    x = self._conv_mid(x)
    for block in self._torso_blocks:
      x = block(x)
    x = tf.reshape(x, [batch, (width // 8) ** 2 * x.shape[-1]])
    return self._torso_out(tf.nn.relu(x))

  def _core_step(self, torso, core, first):
    keep = 1.0 - tf.cast(first, self._dtype)[:, None]
    state = [tf.cast(core[k], self._dtype) * keep for k in ('h', 'c')]
    out, (h, c) = self._core(torso, state)
    # The carried state is float32 (the trajectory's core_state spec) whatever the compute precision.
    return out, {'h': tf.cast(h, tf.float32), 'c': tf.cast(c, tf.float32)}

  def _policy(self, z, given_action=None, greedy=False):
    """Autoregressive head: samples (given_action None; arg-max if greedy) or teacher-forces.

    Returns per-sub-action (action, log_prob, entropy).
    """
    action, log_prob, entropy = {}, {}, {}
    for i, key in enumerate(self._order):
      logits = tf.cast(self._heads[key](z), tf.float32)  # Softmax, sampling, entropy: float32.
      log_p = tf.nn.log_softmax(logits)
      if given_action is None and greedy:
        sample = tf.argmax(logits, -1, output_type=tf.int32)
      elif given_action is None:
        sample = tf.cast(tf.random.categorical(logits, 1)[:, 0], tf.int32)
      else:
        sample = given_action[key]
      action[key] = sample
      log_prob[key] = tf.gather(log_p, sample, batch_dims=1)
      entropy[key] = -tf.reduce_sum(tf.exp(log_p) * log_p, -1)
      if i + 1 < len(self._order):
        embedded = self._sample_embed[key](self._embedding(key, sample))
        z = tf.nn.relu(z + self._z_update[key](tf.concat([z, embedded], -1)))
    return action, log_prob, entropy

  def _build(self):
    """Creates every variable with one dummy step, so the weights exist before the first real call."""
    shape = self._canvas_shape
    observation = {'canvas': tf.zeros((1,) + shape), 'action_mask': {k: tf.ones([1]) for k in self._order}}
    if self._use_noise:
      observation['noise_sample'] = tf.zeros([1, self._noise_dim])
    if self._conditional:
      observation['target'] = tf.zeros((1,) + shape)
    self.step(tf.constant([int(dm_env.StepType.FIRST)]), observation, self.initial_state(1))
