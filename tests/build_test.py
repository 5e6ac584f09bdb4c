"""BUILD must cover every Python file exactly once, list only files that exist, and no import may circle."""

import ast
import collections
import pathlib
import re

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
  namespace.update(
      package=lambda **kw: None,
      licenses=lambda *a: None,
      load=lambda *a: None,
      glob=lambda patterns: [
          str(p.relative_to(ROOT)) for pattern in patterns for p in sorted(ROOT.glob(pattern))
      ],
  )
  exec(compile((ROOT / 'BUILD').read_text(), 'BUILD', 'exec'), namespace)
  return targets


def _python_files():
  files = set()
  for d in COVERED_DIRS:
    files.update(str(p.relative_to(ROOT)) for p in (ROOT / d).rglob('*.py') if '__pycache__' not in p.parts)
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


def _import_statements(path, source=None):
  """(module, imported names) of every import in `path`, lazy ones too; relative imports made absolute."""
  tree = ast.parse((ROOT / path).read_text() if source is None else source, path)
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      for alias in node.names:
        yield alias.name, ()
    elif isinstance(node, ast.ImportFrom):
      module = node.module
      if node.level:  # `from . import x` in a/b/c.py is `from a.b import x`; each extra dot goes up one.
        package = pathlib.PurePosixPath(path).parts[:-1]
        base = package[: len(package) - (node.level - 1)]
        module = '.'.join(base + ((node.module,) if node.module else ()))
      yield module, tuple(alias.name for alias in node.names)


def test_relative_imports_resolve_to_their_package():
  source = 'from . import cache\nfrom .locations import check_split\nfrom .. import files\nimport numpy\n'
  assert list(_import_statements('spiral_tf/data/scenes.py', source)) == [
      ('spiral_tf.data', ('cache',)),
      ('spiral_tf.data.locations', ('check_split',)),
      ('spiral_tf', ('files',)),
      ('numpy', ()),
  ]


def _imported_files(path):
  """Repository files that `path` imports (spiral_tf, environments and test fixtures; lazy imports too)."""
  modules = set()
  for module, names in _import_statements(path):
    modules.add(module)
    modules.update(f'{module}.{name}' for name in names)
  files = set()
  for module in modules:
    parts = module.split('.')
    candidates = [ROOT / pathlib.Path(*parts).with_suffix('.py'), ROOT / pathlib.Path(*parts) / '__init__.py']
    if len(parts) == 1:
      candidates.append(ROOT / 'tests' / f'{module}.py')  # Fixtures beside the tests.
    for candidate in candidates:
      if candidate.is_file() and candidate.relative_to(ROOT).parts[0] in COVERED_DIRS:
        files.add(str(candidate.relative_to(ROOT)))
  return files - {path}


def test_deps_exist_have_no_cycle_and_cover_every_import():
  targets = {
      name: kwargs.get('deps', []) + [d for d in kwargs.get('data', []) if d.startswith(':')]
      for _, name, _, kwargs in _targets()
  }
  owner = {src: name for _, name, srcs, _ in _targets() for src in srcs}
  unknown = sorted(
      f'{name} → {dep}' for name, deps in targets.items() for dep in deps if dep.lstrip(':') not in targets
  )
  assert not unknown, f'deps on targets that do not exist: {unknown}'

  def closure(name, path=()):
    assert name not in path, f'dependency cycle: {" → ".join(path + (name,))}'
    reached = {name}
    for dep in targets[name]:
      reached |= closure(dep.lstrip(':'), path + (name,))
    return reached

  missing = []
  for _, name, srcs, _ in _targets():
    reachable = closure(name)
    for src in srcs:
      if not src.endswith('.py'):
        continue
      for imported in sorted(_imported_files(src)):
        if imported in owner and owner[imported] not in reachable:
          missing.append(f'{name} ({src} imports {imported}) needs :{owner[imported]}')
  assert not missing, 'BUILD deps miss imports:\n' + '\n'.join(missing)


def _module_file(module):
  """The repository file of a dotted module name (a package's __init__.py), or None."""
  parts = module.split('.')
  path = ROOT / pathlib.Path(*parts)
  for candidate in (path.with_suffix('.py'), path / '__init__.py'):
    if candidate.is_file() and candidate.relative_to(ROOT).parts[0] in ('spiral_tf', 'environments'):
      return str(candidate.relative_to(ROOT))
  return None


def _library_imports(path):
  """Library modules `path` imports, lazy imports too; `from package import module` names the module only.

  (Python runs the package's __init__ first, but a package gathering its own modules is no circle; a
  name that is not a module, `from package import name`, depends on the package.)
  """
  files = set()
  for module, names in _import_statements(path):
    files.add(_module_file(module) if not names else None)
    files.update(_module_file(f'{module}.{name}') or _module_file(module) for name in names)
  return files - {None, path}


def _library_modules():
  return sorted(f for f in _python_files() if f.split('/')[0] in ('spiral_tf', 'environments'))


def _circles(graph):
  """Every import circle of `graph` {node: nodes it imports} that a depth-first walk meets."""
  state, circles = {}, []

  def visit(node, path):
    state[node] = 'open'
    for imported in sorted(graph.get(node, ())):
      if state.get(imported) == 'open':
        circles.append(
            ' → '.join(
                path[path.index(imported) :] + [node, imported] if imported in path else [node, imported]
            )
        )
      elif imported not in state:
        visit(imported, path + [node])
    state[node] = 'done'

  for node in sorted(graph):
    if node not in state:
      visit(node, [])
  return circles


def test_no_module_imports_one_that_imports_it_back():
  # The layering the BUILD groups declare, module by module: imports point down, lazy ones included.
  graph = {m: _library_imports(m) for m in _library_modules()}
  # The graph sees real imports.
  assert 'spiral_tf/distributed/learner.py' in graph['spiral_tf/distributed/roles.py']
  assert 'environments/mujoco_scenes.py' in graph['spiral_tf/data/scenes_dataset.py']
  circles = _circles(graph)
  assert not circles, 'import circles:\n' + '\n'.join(circles)
  assert _circles({'a': {'b'}, 'b': {'c'}, 'c': {'a'}}) == ['a → b → c → a']  # The walk finds one.


def _layer(module):
  """environments/, a sub-package of spiral_tf, or one of spiral_tf's own modules (config.py, ...)."""
  parts = module.split('/')
  return parts[0] if parts[0] == 'environments' else '/'.join(parts[:2])


def test_packages_import_down_only():
  """Circles between packages (data → inference → data through different modules) break the layers too."""
  graph = collections.defaultdict(set)
  for module in _library_modules():
    graph[_layer(module)].update(_layer(m) for m in _library_imports(module) if _layer(m) != _layer(module))
  circles = _circles(graph)
  assert not circles, 'circles between packages:\n' + '\n'.join(circles)
  # The renderers are the bottom layer: they import nothing of spiral_tf.
  assert graph['environments'] == set(), graph['environments']


def test_every_lazy_import_says_why():
  """An import inside a function (MuJoCo's GL backend, TensorFlow kept out of a process or after a CLI's
  flag checks) has a comment: on the line above it (or above the group of imports it opens) or after its
  pylint directive. The library, the CLIs in launch/ and the benchmarks alike."""
  silent = []
  scripts = sorted(f for f in _python_files() if f.split('/')[0] in ('launch', 'benchmarks'))
  for path in _library_modules() + scripts:
    lines = (ROOT / path).read_text().splitlines()
    lazy = {
        node.lineno
        for function in ast.walk(ast.parse('\n'.join(lines), path))
        if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef))
        for node in ast.walk(function)
        if isinstance(node, (ast.Import, ast.ImportFrom))
    }
    for lineno in sorted(lazy):
      inline = lines[lineno - 1].partition('#')[2]
      if re.sub(r'pylint:\s*disable=[\w,-]+', '', inline).strip(' #'):
        continue
      above = lineno - 2
      while above >= 0 and lines[above].strip().startswith(('import ', 'from ')):
        above -= 1
      if above < 0 or not lines[above].strip().startswith('#'):
        silent.append(f'{path}:{lineno}: {lines[lineno - 1].strip()}')
  assert not silent, 'lazy imports without a reason:\n' + '\n'.join(silent)
