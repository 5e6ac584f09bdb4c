"""TensorBoard as a user gets it, asked over HTTP what the browser asks.

`make tensorboard` runs launch/serve_tensorboard.py, which becomes the venv's own `tensorboard` binary.
Here it serves the logs of the short real run of tests/train_fixtures.py (shared with tests/train_test.py)
after one pass of the evaluator over that run's export, on a loopback port the OS picks. Checked:
  * the process is the venv's tensorboard, listening on 127.0.0.1 only, at the URL it printed;
  * the runs are named for their writers (`learner`, `eval`), not `.`;
  * /data/plugin/scalars/tags and /data/plugin/images/tags list what the learner and the evaluator write,
    and an image comes back as a PNG;
  * /data/plugin/custom_scalars/layout is spiral_tf/dashboard.py's layout as the learner wrote it, with the
    charts the dashboard promises (D(real) with D(fake), training l2 with the held-out and blank-canvas
    MSE, ...), every chart finds data, and no tag is drawn in two charts;
  * SIGTERM to the printed process's pid stops it.
A broken install (setuptools without pkg_resources: tensorboard dies on import) fails the fixture with
tensorboard's own error.
"""

import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from google.protobuf import json_format
import psutil
import pytest
from tensorboard.plugins.custom_scalar import layout_pb2

from spiral_tf import dashboard
import train_fixtures
from train_fixtures import IMAGE_TAGS
from train_fixtures import SCALAR_TAGS
from train_fixtures import TRAIN

ROOT = pathlib.Path(__file__).resolve().parent.parent
SERVE = [sys.executable, str(ROOT / 'launch' / 'serve_tensorboard.py')]
EVAL_TAGS = ('eval/agent_mse', 'eval/blank_mse')
EVAL_IMAGE_TAGS = ('eval/targets_and_paintings',)
START_S = 120  # TensorBoard imports TensorFlow: slow on 2 busy cores.
# Loopback only: never through a proxy the environment may name.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _wait_for(predicate, timeout_s, what, proc=None, log=None):
  """predicate()'s first true value; fails naming `what` (a string, or a function giving one) and the log."""
  describe = what if callable(what) else lambda: what
  deadline = time.monotonic() + timeout_s
  while time.monotonic() < deadline:
    value = predicate()
    if value:
      return value
    if proc is not None and proc.poll() is not None:
      pytest.fail(f'{describe()}: the process exited with code {proc.returncode}:\n{_tail(log)}')
    time.sleep(0.5)
  pytest.fail(f'{describe()}: not within {timeout_s} s\n{_tail(log)}')


def _tail(path, chars=4000):
  return pathlib.Path(path).read_text(errors='replace')[-chars:] if path else ''


def _evaluate_once(root, log):
  """`--role=evaluator` on the run until it has scored the export once (TensorBoard run `eval`)."""
  with open(log, 'w') as out:
    proc = subprocess.Popen(
        TRAIN + [f'--root_dir={root}', '--role=evaluator', '--eval_targets=4'],
        cwd=ROOT,
        stdout=out,
        stderr=subprocess.STDOUT,
    )
  try:
    _wait_for(
        lambda: '[evaluator] learner step' in _tail(log),
        START_S,
        'the evaluator scoring the export',
        proc,
        log,
    )
  finally:
    proc.send_signal(signal.SIGTERM)  # It polls for the next export until told to stop.
    proc.wait(timeout=60)
  assert proc.returncode == 0, _tail(log)


def _get(url, timeout=10):
  with OPENER.open(url, timeout=timeout) as response:
    return response.read()


def _json(url):
  return json.loads(_get(url))


def _answering(url):
  try:
    return _json(url)
  except (urllib.error.URLError, ConnectionError, json.JSONDecodeError):
    return None


@pytest.fixture(scope='module')
def served(tmp_path_factory):
  """(url, process, stdout log, stderr log) of TensorBoard serving the run; stopped at the end by its pid."""
  run = train_fixtures.smoke_run()
  logs = tmp_path_factory.mktemp('tensorboard')
  _evaluate_once(run.root, logs / 'evaluator.log')
  out, err = logs / 'serve.out', logs / 'serve.err'
  with open(out, 'w') as stdout, open(err, 'w') as stderr:
    proc = subprocess.Popen(SERVE + [f'--run={run.root}', '--port=0'], cwd=ROOT, stdout=stdout, stderr=stderr)
  try:
    url = _wait_for(
        lambda: re.search(r'starting at (http://\S+/)', _tail(out)), 30, 'the printed URL', proc, err
    ).group(1)

    last = {}

    def loaded():  # Answers, and has read both runs (the data server loads them in the background).
      last['tags'] = _answering(url + 'data/plugin/scalars/tags')
      tags = last['tags'] or {}
      return set(SCALAR_TAGS) <= set(tags.get('learner', ())) and set(EVAL_TAGS) <= set(tags.get('eval', ()))

    _wait_for(
        loaded,
        START_S,
        lambda: f'TensorBoard at {url} serving the learner and eval scalars (last '
        f'answer: {last.get("tags")})',
        proc,
        err,
    )
    yield url, proc, out, err
  finally:
    if proc.poll() is None:
      os.kill(proc.pid, signal.SIGKILL)  # Only if test_sigterm_stops_it did not get that far.
      proc.wait(timeout=30)


def test_is_the_venvs_tensorboard_on_loopback_at_the_printed_url(served):
  url, proc, out, err = served
  assert url.startswith('http://127.0.0.1:'), url
  # exec: the pid we started is TensorBoard itself, run from the venv's bin/.
  binary = os.path.join(os.path.dirname(sys.executable), 'tensorboard')
  assert binary in psutil.Process(proc.pid).cmdline(), psutil.Process(proc.pid).cmdline()
  assert f'TensorBoard 2.15.2 at {url}' in _tail(err), _tail(err)
  listening = [
      c.laddr for c in psutil.Process(proc.pid).net_connections('inet') if c.status == psutil.CONN_LISTEN
  ]
  assert listening and all(address.ip == '127.0.0.1' for address in listening), listening
  assert f'{url}#custom_scalars' in _tail(out)


def test_runs_are_named_for_their_writers(served):
  assert sorted(_json(served[0] + 'data/runs')) == ['eval', 'learner']


def test_scalar_and_image_tags_of_the_learner_and_the_evaluator(served):
  url = served[0]
  scalars = _json(url + 'data/plugin/scalars/tags')
  for run, tags in (('learner', SCALAR_TAGS), ('eval', EVAL_TAGS)):
    missing = sorted(set(tags) - set(scalars[run]))
    assert not missing, f'{run}: scalar tags {missing} not served; have {sorted(scalars[run])}'
  images = _json(url + 'data/plugin/images/tags')
  for run, tags in (('learner', IMAGE_TAGS), ('eval', EVAL_IMAGE_TAGS)):
    missing = sorted(set(tags) - set(images[run]))
    assert not missing, f'{run}: image tags {missing} not served; have {sorted(images[run])}'
  samples = _json(
      url
      + 'data/plugin/images/images?'
      + urllib.parse.urlencode({'run': 'learner', 'tag': 'strokes', 'sample': 0})
  )
  assert samples, 'no strokes images'
  assert _get(url + 'data/plugin/images/individualImage?' + samples[-1]['query']).startswith(b'\x89PNG')


def _layout(url):
  return json_format.Parse(_get(url + 'data/plugin/custom_scalars/layout'), layout_pb2.Layout())


def _charts(layout, tag):
  """[(category title, chart title)] of the charts whose regexes match `tag` (as the plugin matches)."""
  return [
      (category.title, chart.title)
      for category in layout.category
      for chart in category.chart
      if any(re.match(regex, tag) for regex in chart.multiline.tag)
  ]


def test_custom_scalars_layout_is_served_and_groups_what_belongs_together(served):
  url = served[0]
  listing = _json(url + 'data/plugins_listing')
  assert listing['custom_scalars']['enabled'], 'the Custom Scalars tab is disabled: no layout found'
  layout = _layout(url)
  assert layout == dashboard.layout()  # What the learner wrote is what the code says.

  def one_chart(*tags):
    charts = {tag: _charts(layout, tag) for tag in tags}
    assert all(len(c) == 1 for c in charts.values()) and len(set(map(tuple, charts.values()))) == 1, charts

  def one_category(*tags):
    categories = {tag: {category for category, _ in _charts(layout, tag)} for tag in tags}
    assert all(len(c) == 1 for c in categories.values()), categories
    assert len(set.union(*categories.values())) == 1, categories

  one_chart('d_score_real', 'd_score_fake')
  one_chart('l2_to_target', 'eval/agent_mse', 'eval/blank_mse')
  # The learning diagnostics, including ones added later under diagnostics/ (matched by regex).
  one_category(
      'entropy',
      'policy_loss',
      'value_loss',
      'diagnostics/explained_variance',
      'diagnostics/entropy_brush',
      'grad_norm',
  )
  one_category('frames_per_s', 'busy_fraction', 'queue_size', 'fakes_size')
  one_chart('policy_learning_rate', 'entropy_cost')  # What PBT changes in a population member.


def test_every_chart_has_data_and_no_tag_is_in_two_charts(served):
  url = served[0]
  layout = _layout(url)
  served_tags = _json(url + 'data/plugin/scalars/tags')
  twice = {
      tag: _charts(layout, tag)
      for run in served_tags
      for tag in served_tags[run]
      if len(_charts(layout, tag)) > 1
  }
  assert not twice, f'tags drawn in more than one chart: {twice}'
  for category in layout.category:
    for chart in category.chart:
      found = {}  # run → tags with events, as the dashboard fetches them (one request per run and regex).
      for run in served_tags:
        for regex in chart.multiline.tag:
          response = _json(
              url + 'data/plugin/custom_scalars/scalars?' + urllib.parse.urlencode({'run': run, 'tag': regex})
          )
          assert response['regex_valid'], (chart.title, regex)
          found.setdefault(run, set()).update(t for t, events in response['tag_to_events'].items() if events)
      assert any(found.values()), f'chart {chart.title!r} ({list(chart.multiline.tag)}) has no data'
      if 'l2_to_target' in found.get('learner', ()):  # Training and held-out on the same chart.
        assert set(EVAL_TAGS) <= found['eval'], (chart.title, found)


def test_sigterm_stops_it(served):
  url, proc, _, err = served
  os.kill(proc.pid, signal.SIGTERM)
  assert proc.wait(timeout=30) is not None
  assert 'TensorBoard caught SIGTERM' in _tail(err), _tail(err)
  assert _answering(url + 'data/runs') is None


def _fake_run(runs, name, age_s):
  events = runs / name / 'tensorboard' / 'learner' / 'events.out.tfevents.0.host'
  events.parent.mkdir(parents=True)
  events.write_bytes(b'')
  then = time.time() - age_s
  os.utime(events, (then, then))


def test_serve_picks_the_run_that_logged_last_and_names_what_is_missing(tmp_path):
  runs = tmp_path / 'runs'
  for name, age_s in (('older', 600), ('newer', 0), ('reproductions/nested', 300)):
    _fake_run(runs, name, age_s)
  # `--version_tb` makes the exec'd tensorboard print its version and exit instead of serving.
  result = subprocess.run(
      SERVE + [f'--runs_dir={runs}', '--', '--version_tb'],
      cwd=ROOT,
      capture_output=True,
      text=True,
      timeout=120,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  assert (
      f'[tensorboard] {runs / "newer" / "tensorboard"} (runs: learner) — the latest of 3 runs under '
      f'{runs}'
  ) in result.stdout, result.stdout
  assert result.stdout.strip().endswith('2.15.2'), result.stdout  # The pinned tensorboard ran.
  (tmp_path / 'empty').mkdir()
  for flags, message in (
      ([f'--runs_dir={tmp_path / "empty"}'], 'no TensorBoard logs under'),
      ([f'--run={tmp_path / "absent"}'], 'is not a directory'),
      ([f'--run={tmp_path / "empty"}'], 'no TensorBoard logs under'),
  ):
    failed = subprocess.run(SERVE + flags, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert failed.returncode == 1 and 'serve_tensorboard.py: error: ' in failed.stderr, failed.stderr
    assert message in failed.stderr and str(tmp_path) in failed.stderr, failed.stderr


def test_learner_log_dir_keeps_the_layout_of_older_runs(tmp_path):
  fresh, old = tmp_path / 'fresh', tmp_path / 'old'
  assert dashboard.learner_log_dir(str(fresh)) == str(fresh / 'tensorboard' / 'learner')
  (old / 'tensorboard' / 'eval').mkdir(parents=True)
  (old / 'tensorboard' / 'events.out.tfevents.1.host').write_bytes(b'')  # The learner's, before sub-dirs.
  assert dashboard.learner_log_dir(str(old)) == str(old / 'tensorboard')  # Resumes into the same run.
  assert dashboard.eval_log_dir(str(old)) == str(old / 'tensorboard' / 'eval')
