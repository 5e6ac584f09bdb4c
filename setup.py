"""spiral_tf: SPIRAL (Ganin et al., 2018) in TensorFlow 2 / Keras on DeepMind's stack.

The painter's C extension (`environments._mypaint`) is compiled against the system libmypaint found by
`pkg-config libmypaint` (Debian: `libmypaint-dev`).
"""

import subprocess

import setuptools


def _pkg_config(*args):
  try:
    out = subprocess.run(['pkg-config', *args, 'libmypaint'], check=True, capture_output=True, text=True)
  except (OSError, subprocess.CalledProcessError) as e:
    raise SystemExit(
        'spiral_tf: pkg-config cannot find libmypaint; install the Debian package '
        f'libmypaint-dev (`make setup` does it): {e}'
    )
  return out.stdout.split()


_cflags = _pkg_config('--cflags')
_libs = _pkg_config('--libs')

mypaint_extension = setuptools.Extension(
    'environments._mypaint',
    sources=['environments/_mypaint.c'],
    include_dirs=[f[2:] for f in _cflags if f.startswith('-I')],
    library_dirs=[f[2:] for f in _libs if f.startswith('-L')],
    libraries=[f[2:] for f in _libs if f.startswith('-l')],
    extra_compile_args=['-O3', '-std=c11'] + [f for f in _cflags if not f.startswith('-I')],
)

STACK = [  # docs/design.md §2 — do not drift.
    'tensorflow>=2.15,<2.16',
    'tf-agents==0.19.0',
    'tensorflow-probability==0.23.0',
    'dm-reverb==0.14.0',
    'dm-env>=1.6',
    'dm-tree',
    'mujoco>=3.1',
    'numpy<2',
    'absl-py',
    'pillow',
]

setuptools.setup(
    name='spiral_tf',
    version='0.1.0',
    description='SPIRAL: Synthesizing Programs for Images using Reinforced Adversarial Learning (TF2)',
    python_requires='>=3.11,<3.12',
    # spiral_tf.* covers the sub-packages (networks, learning, replay, distributed, inference, data).
    packages=setuptools.find_packages(include=['spiral_tf', 'spiral_tf.*', 'environments', 'environments.*']),
    # The bind-address shim is compiled from its source on first use (spiral_tf/distributed/listen.py).
    package_data={'spiral_tf.distributed': ['listen_shim.c']},
    ext_modules=[mypaint_extension],
    install_requires=STACK,
    extras_require={'test': ['pytest'], 'results': ['matplotlib']},  # results: launch/results.py plots
)
