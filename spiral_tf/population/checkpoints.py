"""PBT's exploit on disk: a member's checkpoint directory replaced by a copy of another's latest checkpoint.

The learner (spiral_tf/distributed/learner.py) checkpoints with tf.train.CheckpointManager, which writes a
checkpoint's files (`ckpt-N.index`, `ckpt-N.data-*-of-*`) first and only then rewrites the small index file
`checkpoint` to name it (atomically, by a rename). So the checkpoint that `checkpoint` names is complete,
and it is the only one this module reads: a save in progress in the source is never copied. The manager
keeps the last 3, so the named one can be deleted while it is copied if the source saves three times in
between; a file that vanishes makes the copy start again from the index (`attempts` times).

The copy is assembled in a temporary directory beside the destination and swapped in with renames, so the
destination holds either its old checkpoints or the whole copy, never a mixture (a crash between the two
renames leaves no destination and the old checkpoints in `<destination>.old`). The destination's learner
must not be running (the population stops the member first, spiral_tf/population/): a running learner
would keep its own weights and overwrite the copy at its next save. Resuming, the learner restores the
copy — weights, both optimizers' states, the reward normaliser, the learner step and frames — and takes
its learning rates from its flags (learner.py), which is how the explored values take effect.

No TensorFlow: the index file is text (`model_checkpoint_path: "ckpt-N"`), parsed here.

Usage:
  path = copy_latest(source_run.checkpoints, member_run.checkpoints)   # '…/checkpoints/ckpt-N'
"""

import contextlib
import glob
import os
import re
import shutil
import tempfile

INDEX_FILE = 'checkpoint'
_LATEST = re.compile(r'^model_checkpoint_path:\s*"(.*)"\s*$', re.MULTILINE)


class CheckpointCopyError(RuntimeError):
  """The source has no complete checkpoint to copy, or it kept disappearing (the message says which)."""


def latest(directory: str) -> str:
  """The path of the checkpoint `directory`'s index names (absolute), or '' if there is none."""
  try:
    with open(os.path.join(directory, INDEX_FILE)) as f:
      text = f.read()
  except FileNotFoundError:
    return ''
  match = _LATEST.search(text)
  if not match:
    return ''
  path = match.group(1)
  return path if os.path.isabs(path) else os.path.join(directory, path)


def _files_of(prefix: str) -> list:
  files = sorted(glob.glob(glob.escape(prefix) + '.data-*')) + [prefix + '.index']
  if not os.path.exists(files[-1]) or len(files) < 2:
    raise FileNotFoundError(prefix)
  return files


def copy_latest(source: str, destination: str, attempts: int = 3) -> str:
  """Replaces `destination` by a copy of `source`'s latest complete checkpoint; returns its new path."""
  for _ in range(attempts):
    prefix = latest(source)
    if not prefix:
      raise CheckpointCopyError(f'{source}: no checkpoint to copy (its "{INDEX_FILE}" file names none)')
    parent = os.path.dirname(os.path.abspath(destination))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix='.checkpoints.', suffix='.copy', dir=parent)
    try:
      try:
        for path in _files_of(prefix):
          shutil.copy2(path, staging)
      except FileNotFoundError:  # The source's manager deleted it meanwhile: read the index again.
        continue
      name = os.path.basename(prefix)
      with open(os.path.join(staging, INDEX_FILE), 'w') as f:  # Relative paths, as the manager writes.
        f.write(f'model_checkpoint_path: "{name}"\nall_model_checkpoint_paths: "{name}"\n')
      _swap(staging, destination)
      staging = None
      return os.path.join(destination, name)
    finally:
      if staging:
        shutil.rmtree(staging, ignore_errors=True)
  raise CheckpointCopyError(
      f'{source}: its latest checkpoint was deleted during each of {attempts} copies (saving that often?)'
  )


def _swap(staging: str, destination: str):
  """`staging` becomes `destination`; the old destination, if any, is removed only after the swap."""
  old = None
  if os.path.exists(destination):
    old = destination + '.old'
    with contextlib.suppress(FileNotFoundError):
      shutil.rmtree(old)
    os.rename(destination, old)
  os.rename(staging, destination)
  if old:
    shutil.rmtree(old, ignore_errors=True)
