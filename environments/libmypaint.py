"""The SPIRAL painter: libmypaint strokes as a dm_env.Environment (parity with DeepMind's env).

Usage:

  env = LibMyPaint(episode_length=20, canvas_width=64, grid_width=32)
  timestep = env.reset()                      # FIRST, blank canvas, pen at (0, 0)
  while not timestep.last():                  # episode_length 20 -> 19 actions
    action = {k: rng.integers(s.num_values) for k, s in env.action_spec().items()}
    timestep = env.step(action)
  image = timestep.observation['canvas']      # float32 [64, 64, 3] in [0, 1]
  big = replay(env.program, scale=8)          # the same program at 512 x 512

Actions (one DiscreteArray each, in this order; keys dropped when their feature is off):
  control, end   grid² values; (row, col) = unravel(index, (G, G)), pixel y = W·row/G, x = W·col/G
                 (libmypaint's x is the column, y the row). `end` is the new pen position.
  flag           0 = move the pen (paints nothing), 1 = paint
  pressure       linspace(0.1, 1, 10)                       (absent when use_pressure=False)
  size           brush radius in pixels, one of brush_sizes; libmypaint gets log(size)
                 (absent when there is only one brush size, as in DeepMind's env)
  red/green/blue linspace(0, 1, 20) each, given to libmypaint as HSV (absent when use_color=False)

A paint step samples the quadratic Bézier pen -> control -> end at 51 evenly spaced τ and calls
libmypaint's stroke_to for the 50 segments (dtime 0.1) inside one atomic; the pressure goes linearly
from the previous paint step's pressure to the new one, or is constant when the pen was lifted
before. All of that happens in one C call (environments/_mypaint.c).

Differences from DeepMind's environment (deepmind/spiral, libmypaint.py), on purpose:
  * A move stores the pen at (x, y). DeepMind's stores x = y (a bug: its next stroke starts with a
    line from the real pen position to (y, y)); we do not reproduce that.
  * action_mask at FIRST is all ones (DeepMind's returns the move mask there, a known wart its
    agents depend on).
  * episode_step is the 1-based index of the observation: 1 at FIRST, k + 1 after k actions, and
    LAST arrives when it reaches episode_length. DeepMind's shows 0 at FIRST, then 2, 3, ...
  * The canvas is converted from libmypaint's fixed point straight to float32 (no rounding to 8
    bits first).
Additions: render_width (render larger, observe an area-averaged downsample, SPIRAL++), `stats`,
`program` and `replay`.

Randomness: dry_brush jitters its dabs with libmypaint's brush RNG, which libmypaint 1.6 seeds with
the constant 1000 in mypaint_brush_new (mypaint_brush_new_with_buckets too) and cannot reseed: the
RNG_SEED brush state is ignored. Every episode therefore starts from a fresh copy of the brush, so
an episode's canvas is a deterministic function of its program (replay at scale 1 reproduces it
exactly, whatever ran before). DeepMind's env keeps one brush, so its jitter continues from episode
to episode and is not reproducible. `seed` is accepted for interface uniformity and changes nothing.

Threads: the C stroke releases the GIL while libmypaint works, so environments in different threads
paint in parallel; one environment must be stepped by one thread at a time.
"""

import collections
import math
import os

from dm_env import specs
import numpy as np

from environments import _mypaint
from environments import canvas

DEFAULT_BRUSHES_DIR = '/usr/share/mypaint-data/1.0'
BRUSHES_DIR_ENV = 'SPIRAL_BRUSHES_DIR'

PRESSURE_VALUES = np.linspace(0.1, 1.0, 10)
COLOR_VALUES = np.linspace(0.0, 1.0, 20)
_COLOR_KEYS = ('red', 'green', 'blue')
_MOVE_EFFECTS = ('end', 'flag')  # the sub-actions that still have an effect on a move


def find_brush(brush_type, brushes_basedir=None):
  """Returns the path of `<brushes dir>/brushes/<brush_type>.myb`.

  The brushes directory is `brushes_basedir` if given, else $SPIRAL_BRUSHES_DIR if set, else
  /usr/share/mypaint-data/1.0 (Debian's mypaint-brushes). A missing brush raises
  FileNotFoundError listing every path tried.
  """
  if brushes_basedir is not None:
    base, origin = str(brushes_basedir), 'brushes_basedir argument'
  elif os.environ.get(BRUSHES_DIR_ENV):
    base, origin = os.environ[BRUSHES_DIR_ENV], f'${BRUSHES_DIR_ENV}'
  else:
    base, origin = DEFAULT_BRUSHES_DIR, 'default'
  tried = [os.path.join(base, 'brushes', brush_type + '.myb'), os.path.join(base, brush_type + '.myb')]
  for path in tried:
    if os.path.isfile(path):
      return path
  hint = '' if os.path.isdir(base) else f' (directory {base!r} does not exist)'
  raise FileNotFoundError(
      f'libmypaint brush {brush_type!r} not found{hint}; looked in ({origin}): {", ".join(tried)}. '
      f'Install the Debian package mypaint-brushes, or pass brushes_basedir= / set '
      f'${BRUSHES_DIR_ENV} to a directory that contains brushes/{brush_type}.myb.'
  )


def action_spec(grid_width=32, use_pressure=True, brush_sizes=(1, 2, 4, 8, 12, 24), use_color=True):
  """The action spec of a LibMyPaint with these settings (keys of features that are off are absent)."""
  grid = int(grid_width)
  spec = collections.OrderedDict()
  spec['control'] = specs.DiscreteArray(grid * grid, dtype=np.int32, name='control')
  spec['end'] = specs.DiscreteArray(grid * grid, dtype=np.int32, name='end')
  spec['flag'] = specs.DiscreteArray(2, dtype=np.int32, name='flag')
  if use_pressure:
    spec['pressure'] = specs.DiscreteArray(len(PRESSURE_VALUES), dtype=np.int32, name='pressure')
  if len(brush_sizes) > 1:
    spec['size'] = specs.DiscreteArray(len(brush_sizes), dtype=np.int32, name='size')
  if use_color:
    for key in _COLOR_KEYS:
      spec[key] = specs.DiscreteArray(len(COLOR_VALUES), dtype=np.int32, name=key)
  return spec


def channels(use_color=True, use_alpha=False) -> int:
  """Canvas channels: 1 grey, 3 colour, 4 colour with alpha."""
  return 1 if not use_color else (4 if use_alpha else 3)


def specs_of(
    episode_length=20,
    canvas_width=64,
    grid_width=32,
    brush_sizes=(1, 2, 4, 8, 12, 24),
    use_color=True,
    use_pressure=True,
    use_alpha=False,
    **unused_settings,
):
  """(action spec, observation spec) of `LibMyPaint(**settings)`, without building one (no libmypaint).

  Takes the constructor's keyword arguments; those that do not change the specs (brush, background,
  render width, seed) are ignored. The environment itself builds its specs with the same functions.
  """
  del episode_length, unused_settings  # The specs do not depend on them.
  actions = action_spec(grid_width, use_pressure, brush_sizes, use_color)
  width = int(canvas_width)
  return actions, canvas.observation_spec((width, width, channels(use_color, use_alpha)), actions)


class LibMyPaint(canvas.CanvasEnvironment):
  """libmypaint painter with DeepMind's SPIRAL action space; episodes as canvas.CanvasEnvironment."""

  def __init__(
      self,
      episode_length=20,
      canvas_width=64,
      grid_width=32,
      brush_type='classic/dry_brush',
      brush_sizes=(1, 2, 4, 8, 12, 24),
      use_color=True,
      use_pressure=True,
      use_alpha=False,
      background='white',
      brushes_basedir=None,
      render_width=None,
      seed=None,
  ):
    for name, value in (('canvas_width', canvas_width), ('grid_width', grid_width)):
      if not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f'{name} must be a positive integer, got {value!r}')
    render_width = canvas_width if render_width is None else render_width
    if (
        not isinstance(render_width, (int, np.integer))
        or render_width < canvas_width
        or render_width % canvas_width
    ):
      raise ValueError(
          f'render_width must be a positive multiple of canvas_width={canvas_width}, ' f'got {render_width!r}'
      )
    brush_sizes = tuple(float(s) for s in brush_sizes)
    if not brush_sizes or min(brush_sizes) <= 0:
      raise ValueError(f'brush_sizes must be a non-empty sequence of positive radii, got {brush_sizes}')
    if background not in ('white', 'transparent'):
      raise ValueError(f"background must be 'white' or 'transparent', got {background!r}")

    self._canvas_width = int(canvas_width)
    self._grid_width = int(grid_width)
    self._render_width = int(render_width)
    self._brush_sizes = brush_sizes
    self._use_color = bool(use_color)
    self._use_pressure = bool(use_pressure)
    self._use_alpha = bool(use_alpha)
    self._seed = seed  # Accepted for uniformity; the renderer is deterministic (module docstring).
    self._channels = channels(use_color, use_alpha)
    super().__init__(
        episode_length,
        action_spec(grid_width, use_pressure, brush_sizes, use_color),
        (self._canvas_width, self._canvas_width, self._channels),
    )

    path = find_brush(brush_type, brushes_basedir)
    with open(path, encoding='utf-8') as f:
      brush_json = f.read()
    try:
      self._painter = _mypaint.Painter(
          self._render_width, brush_json, background == 'white', self._channels, self._canvas_width
      )
    except ValueError as e:
      raise ValueError(f'{path}: {e}') from None

    # Render-space lookup tables, so a step is a few list indexings and one C call.
    grid = self._grid_width
    render_scale = self._render_width / self._canvas_width
    unit = self._render_width / grid
    self._locations = [(unit * (i % grid), unit * (i // grid)) for i in range(grid * grid)]  # (x, y)
    self._log_sizes = [math.log(s * render_scale) for s in brush_sizes]
    self._pressures = [float(p) for p in PRESSURE_VALUES]
    self._colors = [float(c) for c in COLOR_VALUES]
    self._move_mask = self._mask_of(_MOVE_EFFECTS)
    self.stats = {'strokes': 0, 'disjoint_strokes': 0}

  # --- canvas.CanvasEnvironment --------------------------------------------------------------

  def _start_episode(self):
    self._painter.clear()
    self._pen = self._locations[0]
    self._pen_pressure = 0.0
    self._pen_down = False  # whether the previous action painted (the stroke continues)
    self.stats = {'strokes': 0, 'disjoint_strokes': 0}

  def _act(self, action):
    if action['flag'] == 1:
      self._paint(action)
      return self._full_mask
    self._pen = self._locations[action['end']]
    self._pen_down = False  # no libmypaint call at all: the lift is applied at the next paint
    return self._move_mask

  def _canvas(self):
    picture = np.empty(self._canvas_shape, np.float32)
    self._painter.read_into(picture)
    return picture

  # --- dm_env.Environment ---------------------------------------------------------------------

  def close(self):
    self._painter = None

  # --- extras ---------------------------------------------------------------------------------

  @property
  def grid_width(self):
    return self._grid_width

  @property
  def canvas_width(self):
    return self._canvas_width

  @property
  def libmypaint_seconds(self):
    """Total seconds spent inside libmypaint (brush dynamics and dab rendering) so far."""
    return self._painter.libmypaint_seconds

  # --- internals ------------------------------------------------------------------------------

  def _paint(self, action):
    pressure = self._pressures[action['pressure']] if self._use_pressure else 1.0
    log_size = self._log_sizes[action['size'] if len(self._log_sizes) > 1 else 0]
    if self._use_color:
      colors = self._colors
      red, green, blue = colors[action['red']], colors[action['green']], colors[action['blue']]
    else:
      red = green = blue = 0.0  # black ink, as DeepMind's grey canvas
    x_s, y_s = self._pen
    x_c, y_c = self._locations[action['control']]
    x_e, y_e = self._locations[action['end']]
    new_stroke = not self._pen_down
    start_pressure = pressure if new_stroke else self._pen_pressure
    self._painter.stroke(
        x_s, y_s, x_c, y_c, x_e, y_e, start_pressure, pressure, log_size, red, green, blue, new_stroke
    )
    self._pen = (x_e, y_e)
    self._pen_pressure = pressure
    self._pen_down = True
    self.stats['strokes'] += 1
    self.stats['disjoint_strokes'] += new_stroke


def replay(program, scale=1, **env_kwargs):
  """Paints `program` (a list of action dicts, e.g. `env.program`) on a fresh canvas.

  With scale = k the canvas is k times wider and the brush sizes k times larger, so the picture is
  the same one at k× resolution (DeepMind's notebook replays at 8×). `env_kwargs` are the
  LibMyPaint arguments the program was produced with.

  Returns:
    float32 [W·k, W·k, C] canvas.
  """
  if not isinstance(scale, (int, np.integer)) or scale < 1:
    raise ValueError(f'scale must be a positive integer, got {scale!r}')
  kwargs = dict(env_kwargs)
  width = kwargs.get('canvas_width', 64)
  kwargs['canvas_width'] = width * scale
  if kwargs.get('render_width') is not None:
    kwargs['render_width'] = kwargs['render_width'] * scale
  kwargs['brush_sizes'] = [s * scale for s in kwargs.get('brush_sizes', (1, 2, 4, 8, 12, 24))]
  kwargs['episode_length'] = max(kwargs.get('episode_length', 20), len(program) + 1)
  env = LibMyPaint(**kwargs)
  timestep = env.reset()
  for action in program:
    timestep = env.step(action)
  return timestep.observation['canvas']
