"""Where a run's TensorBoard logs live, and the Custom Scalars layout that makes them read at a glance.

A run directory holds `tensorboard/` with one sub-directory per writer, so TensorBoard names each run for
what wrote it:
  tensorboard/learner/   the learner's scalars and images (and the layout below)
  tensorboard/eval/      the evaluator's held-out figures (`eval/agent_mse`, `eval/blank_mse`)
Runs started before this layout have the learner's events directly in `tensorboard/` (a TensorBoard run
called `.`); `learner_log_dir` keeps finding them there, so such a run resumes into the same place and
readers of old runs keep working.

The layout (TensorBoard's `custom_scalars` plugin, the "Custom Scalars" tab) groups the tags into the
questions one asks of a SPIRAL run: does D separate real from fake, does the painting get closer to the
target (in training and on held-out targets, against a blank canvas), is the policy still learning, and
is the pipeline busy. Tags are regular expressions matched from their start, so diagnostics added later
(`diagnostics/...`, `grad_norm...`) appear in their chart without a change here.

Usage:
  writer = tf.summary.create_file_writer(dashboard.learner_log_dir(root_dir))
  dashboard.write_layout(writer, step)      # once per learner start; the newest layout wins
  dashboard.eval_log_dir(root_dir)          # where the evaluator writes
  dashboard.layout()                        # the layout_pb2.Layout itself
"""

import glob
import os

from tensorboard.plugins.custom_scalar import layout_pb2

from spiral_tf import run_dir

LOG_DIR = run_dir.TENSORBOARD

LEARNER_RUN = 'learner'
EVAL_RUN = 'eval'

# (category, [(chart title, [tag regexes])]). `^…$` pins an exact tag; an open end admits a family.
LAYOUT = (
    (
        'Discriminator',
        [
            ('D(real) and D(fake)', [r'^d_score_real$', r'^d_score_fake$']),
            (
                'D losses and gradient penalty',
                [r'^d_loss$', r'^d_loss_real$', r'^d_loss_fake$', r'^gradient_penalty$'],
            ),
        ],
    ),
    (
        'Reconstruction: l2 to the target',
        [
            # Training episodes' final canvas, the evaluator's held-out paintings, and not painting at all.
            (
                'l2: training, held-out (eval/agent_mse) and blank canvas (eval/blank_mse)',
                [r'^l2_to_target$', r'^eval/agent_mse$', r'^eval/blank_mse$'],
            ),
            ('reward and value', [r'^reward_mean$', r'^value_mean$']),
        ],
    ),
    (
        'Learning: entropy and diagnostics',
        [
            ('entropy', [r'^entropy$', r'^diagnostics/entropy']),
            ('policy and value losses', [r'^policy_loss$', r'^value_loss$', r'^total_policy_loss$']),
            # What PBT changes in a population's member (spiral_tf/population/), and a decayed rate.
            ('hyper-parameters', [r'^policy_learning_rate$', r'^entropy_cost$']),
            # Every diagnostic except the entropies (charted above): a tag belongs to one chart only.
            (
                'learning diagnostics',
                [
                    r'^diagnostics/(?!entropy)',
                    r'^grad_norm',
                    r'^log_rho_mean$',
                    r'^nonfinite_updates_skipped$',
                ],
            ),
        ],
    ),
    (
        'Throughput',
        [
            ('frames per second', [r'^frames_per_s$']),
            ('learner busy fraction (1 = never waits for data)', [r'^busy_fraction$']),
            ('Reverb: episode queue and fakes replay', [r'^queue_size$', r'^fakes_size$']),
            ('policy lag (learner steps)', [r'^policy_lag_steps$']),
        ],
    ),
)


def log_dir(root_dir: str) -> str:
  """What to point TensorBoard at: every writer of the run, as separate TensorBoard runs."""
  return run_dir.RunDir(root_dir).tensorboard


def learner_log_dir(root_dir: str) -> str:
  """`tensorboard/learner`, or `tensorboard/` itself for a run that started before the sub-directories."""
  legacy = log_dir(root_dir)
  if not os.path.isdir(os.path.join(legacy, LEARNER_RUN)) and glob.glob(
      os.path.join(legacy, 'events.out.tfevents.*')
  ):
    return legacy
  return os.path.join(legacy, LEARNER_RUN)


def eval_log_dir(root_dir: str) -> str:
  return os.path.join(log_dir(root_dir), EVAL_RUN)


def layout() -> layout_pb2.Layout:
  """LAYOUT as the custom_scalars plugin's proto: one multiline chart per entry."""
  categories = []
  for title, charts in LAYOUT:
    categories.append(
        layout_pb2.Category(
            title=title,
            chart=[
                layout_pb2.Chart(title=chart, multiline=layout_pb2.MultilineChartContent(tag=tags))
                for chart, tags in charts
            ],
        )
    )
  return layout_pb2.Layout(category=categories)


def write_layout(writer, step: int = 0) -> None:
  """Writes the layout into `writer`'s run; TensorBoard shows it in the Custom Scalars tab."""
  # Lazy: launch/serve_tensorboard.py finds a run's logs through this module without loading TensorFlow.
  from tensorboard.plugins.custom_scalar import metadata  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  with writer.as_default():
    tf.summary.write(
        metadata.CONFIG_SUMMARY_TAG,
        tf.constant(layout().SerializeToString()),
        step=step,
        metadata=metadata.create_summary_metadata().SerializeToString(),
    )
  writer.flush()
