"""BUILD must cover every Python file exactly once, and list only files that exist."""
import collections
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
COVERED_DIRS = ('spiral_tf', 'environments', 'launch', 'benchmarks', 'tests')


def _targets():
  """Evaluates BUILD (Starlark's call syntax is Python's) with stand-ins that record each target."""
  targets = []

  def rule(kind):
    def record(name, srcs=(), **kwargs):
      targets.append((kind, name, list(srcs), kwargs))
    return record

  namespace = {k: rule(k) for k in ('py_library', 'py_binary', 'py_test', 'cc_binary', 'cc_library')}
  namespace.update(package=lambda **kw: None, licenses=lambda *a: None, load=lambda *a: None,
                   glob=lambda patterns: [str(p.relative_to(ROOT)) for pattern in patterns
                                          for p in sorted(ROOT.glob(pattern))])
  exec(compile((ROOT / 'BUILD').read_text(), 'BUILD', 'exec'), namespace)
  return targets


def _python_files():
  files = set()
  for d in COVERED_DIRS:
    files.update(str(p.relative_to(ROOT)) for p in (ROOT / d).rglob('*.py')
                 if '__pycache__' not in p.parts)
  return files


def test_every_python_file_is_in_exactly_one_target():
  counts = collections.Counter(src for _, _, srcs, _ in _targets() for src in srcs)
  files = _python_files()
  missing = sorted(files - set(counts))
  assert not missing, f'Python files with no BUILD target: {missing}'
  twice = sorted(f for f, n in counts.items() if n > 1)
  assert not twice, f'files listed by more than one BUILD target: {twice}'


def test_every_listed_file_exists():
  listed = {src for _, _, srcs, _ in _targets() for src in srcs}
  absent = sorted(f for f in listed if not (ROOT / f).exists())
  assert not absent, f'BUILD lists files that do not exist: {absent}'


def test_tests_are_py_test_and_target_names_unique():
  targets = _targets()
  names = collections.Counter(name for _, name, _, _ in targets)
  assert [n for n, c in names.items() if c > 1] == []
  for kind, name, srcs, _ in targets:
    if any(s.startswith('tests/') and s.endswith('_test.py') for s in srcs):
      assert kind == 'py_test', f'{name}: test files belong in a py_test, not a {kind}'
  test_files = {f for f in _python_files() if f.startswith('tests/') and f.endswith('_test.py')}
  test_srcs = {s for kind, _, srcs, _ in targets if kind == 'py_test' for s in srcs}
  assert test_files <= test_srcs


def test_every_config_ships_with_the_train_binary():
  # Flagfiles are read at run time; one missing from :train's data is absent under `bazel run`.
  (train,) = [kwargs for kind, name, _, kwargs in _targets() if kind == 'py_binary' and name == 'train']
  configs = {str(p.relative_to(ROOT)) for p in (ROOT / 'configs').rglob('*.cfg')}
  assert any('/' in c.removeprefix('configs/') for c in configs)  # Some live in subdirectories.
  missing = sorted(configs - set(train.get('data', [])))
  assert not missing, f'configs not in the data of the train binary: {missing}'
