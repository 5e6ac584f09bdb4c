"""Serving Reverb on one address: Reverb 0.14 listens on every interface, this narrows it.

`reverb.Server(port=...)` has no host argument: its C++ core listens on `[::]:port`, every interface of
the host. `--reverb_bind_address` (default 127.0.0.1, loopback) is enforced by running the `reverb` role
with a small LD_PRELOAD library (listen_shim.c, compiled on first use with the system C compiler and cached)
that turns the server's wildcard `bind()` into a bind to that address. A wildcard value ('0.0.0.0' or '::')
needs no shim: Reverb then listens everywhere, as it does by itself. The role checks in /proc/net/tcp{,6}
what it really listens on and refuses to serve on anything wider than asked.

This module imports neither TensorFlow nor Reverb (the supervisor uses it).

Usage:
  env = preload_env(address)                  # environment for a child that will start the server
  ensure_preloaded(address)                   # in the reverb role: re-executes itself once if needed
  port = free_port(address)                   # a free port there (RuntimeError: not this host's address)
  listening_sockets(pid)                      # {('127.0.0.1', 41305)}: where process `pid` listens
"""

import hashlib
import ipaddress
import os
import socket
import subprocess
import sys
import tempfile

from spiral_tf import files

ADDRESS_ENV = 'SPIRAL_BIND_ADDRESS'
_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'listen_shim.c')


def is_wildcard(address: str) -> bool:
  return ipaddress.ip_address(address).is_unspecified


def _cache_dir() -> str:
  """A directory only this user can write: ~/.cache/spiral_tf, or <tmp>/spiral_tf-<uid> (read-only HOME)."""
  user_cache = os.environ.get('XDG_CACHE_HOME') or os.path.expanduser('~/.cache')
  candidates = [
      os.path.join(user_cache, 'spiral_tf'),
      os.path.join(tempfile.gettempdir(), f'spiral_tf-{os.getuid()}'),
  ]
  for path in candidates:
    try:
      os.makedirs(path, mode=0o700, exist_ok=True)
      info = os.stat(path)
    except OSError:
      continue
    # A library we preload must not be replaceable by anyone else (a shared /tmp is writable by all).
    if info.st_uid == os.getuid() and not info.st_mode & 0o022 and os.access(path, os.W_OK):
      return path
  raise RuntimeError(f'no private writable directory for the compiled {_SOURCE} (tried {candidates})')


def shim_path() -> str:
  """The compiled shim (built once per source version into the user's cache directory)."""
  with open(_SOURCE, 'rb') as f:
    digest = hashlib.sha256(f.read()).hexdigest()[:12]
  cache = _cache_dir()
  path = os.path.join(cache, f'listen_shim-{digest}.so')
  if os.path.exists(path):
    return path
  compiler = os.environ.get('CC') or 'cc'
  try:
    # Atomic: processes building it at once all end with a whole file.
    with files.atomic_output(path) as tmp:
      subprocess.run(
          [compiler, '-shared', '-fPIC', '-O2', '-o', tmp, _SOURCE, '-ldl'],
          check=True,
          capture_output=True,
          text=True,
          timeout=120,
      )
  except (OSError, subprocess.SubprocessError) as e:
    detail = getattr(e, 'stderr', None) or str(e)
    raise RuntimeError(
        f'cannot build {_SOURCE} with `{compiler}` ({detail.strip()}); it keeps Reverb on '
        '--reverb_bind_address. Install a C compiler (scripts/system_deps.sh), or pass '
        '--reverb_bind_address=0.0.0.0 to let Reverb listen on every interface.'
    ) from None
  return path


def preload_env(address: str, environ=None) -> dict:
  """`environ` (default os.environ) with the shim preloaded for `address` (unchanged for a wildcard)."""
  env = dict(os.environ if environ is None else environ)
  if is_wildcard(address):
    env.pop(ADDRESS_ENV, None)
    return env
  shim = shim_path()
  preload = [p for p in env.get('LD_PRELOAD', '').split(':') if p and p != shim]
  env['LD_PRELOAD'] = ':'.join([shim] + preload)
  env[ADDRESS_ENV] = address
  return env


def ensure_preloaded(address: str) -> None:
  """Re-executes this process with the shim preloaded, unless it already is (or `address` is a wildcard).

  Only the address variable is checked: preload_env sets it together with LD_PRELOAD, so the re-executed
  process returns here at once (no loop); whether the shim took effect is the caller's check
  (listening_sockets once the server is up).
  """
  if is_wildcard(address) or os.environ.get(ADDRESS_ENV) == address:
    return
  env = preload_env(address)  # Builds the shim first: a missing compiler raises here, in this process.
  sys.stdout.flush()
  sys.stderr.flush()
  # orig_argv keeps the interpreter's own options (-u, -m module, ...); the executable stays this one.
  os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)


def free_port(address: str) -> int:
  """A TCP port free on `address`; a clear error if `address` is not one of this host's."""
  host = '' if is_wildcard(address) else address
  family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
  with socket.socket(family, socket.SOCK_STREAM) as s:
    try:
      s.bind((host, 0))
    except OSError as e:
      raise RuntimeError(
          f'--reverb_bind_address={address} cannot be listened on here ({e.strerror}): '
          'use 127.0.0.1, 0.0.0.0 or an address of this host'
      ) from None
    return s.getsockname()[1]


def _decode(hex_address: str) -> str:
  raw = bytes.fromhex(hex_address)
  # /proc prints each 32-bit word in host (little-endian) order.
  words = b''.join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
  address = ipaddress.ip_address(words)
  if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
    address = address.ipv4_mapped
  return str(address)


def listening_sockets(pid: int | str = 'self') -> set[tuple[str, int]]:
  """(address, port) of every listening TCP socket that process `pid` holds (Linux /proc)."""
  inodes = set()
  for fd in os.listdir(f'/proc/{pid}/fd'):
    try:
      target = os.readlink(f'/proc/{pid}/fd/{fd}')
    except OSError:
      continue  # Closed meanwhile.
    if target.startswith('socket:['):
      inodes.add(target[8:-1])
  found = set()
  for table in ('tcp', 'tcp6'):
    try:
      with open(f'/proc/{pid}/net/{table}') as f:
        rows = [row.split() for row in f.read().splitlines()[1:]]
    except FileNotFoundError:
      continue  # No IPv6 in this kernel.
    for row in rows:
      host, port = row[1].rsplit(':', 1)
      if row[3] == '0A' and row[9] in inodes:  # 0A: LISTEN; column 9: the socket's inode.
        found.add((_decode(host), int(port, 16)))
  return found
