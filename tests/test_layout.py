"""The shape of src/: commands on top, packages in layers, no import cycle, `--help` without TensorFlow.

Read with `ast`, not by importing: a cycle hidden inside a function is still a cycle.
"""
from __future__ import annotations

import ast
import dataclasses
import subprocess
import sys

import pytest

from tests.conftest import REPO

SRC = REPO / "src"
# Lower layers first: a package imports only from itself and the packages before it.
LAYERS = ["core", "data", "pipeline", "models", "hardware", "runs", "kaggle", "inference", "training", "kinds",
          "autopilot", "reports"]
MAX_LINES = 300  # a module past it holds two concerns; split it where they part
COMMANDS = ["auto", "backbones", "demo", "eda", "kaggle_api", "ledger", "predict", "prune", "screen_backbones", "stack",
            "submit", "tfrecords", "train", "tune"]


def module_name(path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def kit_imports(path) -> list:
    """Return (imported kit module, line, at top level?) for every import of src.* in a file."""
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "src":
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.split(".")[0] == "src"]
        modules = [n for n in names if (SRC.parent / (n.replace(".", "/") + ".py")).is_file()
                   or (SRC.parent / n.replace(".", "/") / "__init__.py").is_file()]
        found += [(m, node.lineno, id(node) in top) for m in modules]
    return found


def graph() -> dict:
    files = sorted(SRC.rglob("*.py"))
    return {module_name(f): {m for m, _, _ in kit_imports(f)} for f in files}


def test_no_import_cycle():
    edges = graph()
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt == node or nxt not in edges:
                continue
            if state.get(nxt) == "open":
                cycle = stack[stack.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node)


def test_the_cycle_check_finds_a_cycle(tmp_path, monkeypatch):
    """The check above must be able to fail: a planted two-module cycle is reported."""
    edges = {"src.a": {"src.b"}, "src.b": {"src.a"}}
    monkeypatch.setattr(sys.modules[__name__], "graph", lambda: edges)
    with pytest.raises(pytest.fail.Exception, match="import cycle: src.a -> src.b -> src.a"):
        test_no_import_cycle()


def test_packages_import_only_lower_layers():
    assert sorted(p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").is_file()) == sorted(LAYERS)
    for path in sorted(SRC.rglob("*.py")):
        module = module_name(path)
        parts = module.split(".")
        if len(parts) < 3:
            continue  # the commands and src/__init__ may import any package
        own = LAYERS.index(parts[1])
        for imported, line, _ in kit_imports(path):
            package = imported.split(".")[1]
            assert package in LAYERS and LAYERS.index(package) <= own, \
                f"{path.relative_to(REPO)}:{line} ({parts[1]}) imports {imported} ({package}), a higher layer"


def test_the_library_imports_the_kit_at_the_top():
    """Lazy imports of the kit's own modules only in the commands (so --help stays light)."""
    for path in sorted(SRC.rglob("*.py")):
        if path.parent == SRC:
            continue
        lazy = [f"{imported} (line {line})" for imported, line, top in kit_imports(path) if not top]
        assert not lazy, f"{path.relative_to(REPO)} imports kit modules inside functions: {', '.join(lazy)}"


def test_no_module_is_over_300_lines():
    long = {str(p.relative_to(REPO)): n for p in sorted(SRC.rglob("*.py"))
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_the_length_check_finds_a_long_module(tmp_path, monkeypatch):
    """The check above must be able to fail: a planted 301-line module is reported."""
    (tmp_path / "src" / "core").mkdir(parents=True)
    (tmp_path / "src" / "core" / "long.py").write_text("x = 1\n" * (MAX_LINES + 1))
    monkeypatch.setattr(sys.modules[__name__], "SRC", tmp_path / "src")
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    with pytest.raises(AssertionError, match="src/core/long.py': 301"):
        test_no_module_is_over_300_lines()


# A task kind is a home: the interface (src/core/task_kind.py) and one folder per kind (src/kinds/<name>/). A
# number, an identity or tags are told by the class map's raw fields (scale, new_label, multi_label) only there and
# in the class map's own methods (src/data/class_maps.py, which the kinds' readers fill); no layer branches on a
# kind's name or fields: each asks the kind (kind_of(class_map).read_format(...), class_map.kind.datasets(...)).
KIND_HOMES = {"src/core/task_kind.py", "src/data/class_maps.py"}
KIND_FOLDERS = "src/kinds/"
# What a layer once branched on: the kind's name and the fields that told the layers what to do (they are gone
# from the interface; a kind keeps what it needs in its own folder).
KIND_FIELDS = {"name", "output", "split", "activation", "one_class", "independent_outputs", "extra_labels"}


def is_kind_home(path: str) -> bool:
    """Return True for the interface's module, the class map's and every file in a kind's folder."""
    return path in KIND_HOMES or path.startswith(KIND_FOLDERS)


def kind_field_reads(source: str) -> list:
    """Return (line, expression) where code reads a task kind's name or one of KIND_FIELDS: `kind.name`,
    `class_map.kind.output`, `kind_of(m).split`, `kind_named(n).activation` ..."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Attribute) and node.attr in KIND_FIELDS and isinstance(node.ctx, ast.Load)):
            continue
        owner = node.value
        if (isinstance(owner, ast.Name) and owner.id == "kind") or (isinstance(owner, ast.Attribute)
                                                                    and owner.attr == "kind") \
                or (isinstance(owner, ast.Call) and ast.unparse(owner.func) in ("kind_of", "kind_named")):
            found.append((node.lineno, ast.unparse(node)))
    return found


def test_no_layer_branches_on_a_task_kind():
    """Outside the kinds' homes no line reads a kind's name or fields (issue 39 counted 55 in 22 modules): a layer
    asks the kind a question its interface answers, so a new kind is its folder and its line in src/kinds."""
    read = {str(p.relative_to(REPO)): lines for p in sorted(SRC.rglob("*.py"))
            if not is_kind_home(str(p.relative_to(REPO))) and (lines := kind_field_reads(p.read_text()))}
    assert not read, f"a layer reads a task kind's name or fields instead of asking the kind: {read}"


@pytest.mark.parametrize("code", ["if kind.name == 'tags':\n    pass", "x = class_map.kind.output == 'number'",
                                  "rows = kind_of(data.class_map).independent_outputs",
                                  "if not comp.class_maps[comp.target].kind.one_class:\n    pass",
                                  "drawn = kind_of(m).split", "a = kind_named('tags').activation"])
def test_the_kind_branch_check_finds_a_read(code):
    """The check above must be able to fail: each way of reading a kind's name or fields is found."""
    assert kind_field_reads(code)


def test_a_kind_branch_planted_in_a_layer_fails_and_in_a_kind_folder_does_not(tmp_path, monkeypatch):
    """Planted in a layer, `if kind.name == "tags"` fails the check, naming the module and line; in a kind's folder
    it is that kind's own business."""
    for name in ("inference/planted.py", "kinds/tags/planted.py"):
        (tmp_path / "src" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "src" / name).write_text("def fmt(kind):\n    return 'x' if kind.name == 'tags' else ''\n")
    monkeypatch.setattr(sys.modules[__name__], "SRC", tmp_path / "src")
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    with pytest.raises(AssertionError, match=r"\{'src/inference/planted.py': \[\(2, 'kind.name'\)\]\}"):
        test_no_layer_branches_on_a_task_kind()


def test_every_registered_kind_answers_every_question_of_the_interface():
    """Each kind of the kit implements every method of TaskKind (an abstract one left out cannot be made), and a
    kind that leaves one out is refused when it is made, naming the method."""
    from src.core.task_kind import TaskKind, registered

    questions = TaskKind.__abstractmethods__
    assert len(questions) >= 30 and set(registered()) >= {"label", "tags", "number", "identity"}
    for kind in registered().values():
        assert not type(kind).__abstractmethods__, type(kind).__name__
        assert all(getattr(type(kind), q) is not getattr(TaskKind, q) for q in questions), type(kind).__name__

    class HalfKind(TaskKind):
        name = "half"

        def read_target(self, train, target, opts, schema):
            return None

    with pytest.raises(TypeError, match="abstract method"):
        HalfKind()


NOT_A_CLASS_MAP = {"converter", "cfg"}  # scales of their own: src.models.hub's preprocessing, ArcFace's --scale


def raw_kind_tests(source: str) -> list:
    """Return (line, expression) where code tells a kind by a raw field: `<map>.scale is (not) None`,
    getattr(<map>, "scale" | "new_label" | "multi_label"), <map>.new_label / <map>.scale tested for truth or
    against '', or <map>.multi_label read at all (a flag whose only value is the kind)."""
    found = []

    def raw(node, attr):
        return isinstance(node, ast.Attribute) and node.attr == attr and ast.unparse(node.value) not in NOT_A_CLASS_MAP

    def truth(node):  # an expression used as a condition: through `and`, `or`, `not`
        if isinstance(node, ast.BoolOp):
            for value in node.values:
                truth(value)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            truth(node.operand)
        elif raw(node, "new_label") or raw(node, "scale"):
            found.append((node.lineno, ast.unparse(node)))

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr == "multi_label" and isinstance(node.ctx, ast.Load):
            found.append((node.lineno, ast.unparse(node)))
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.comparators[0], ast.Constant):
            field = "scale" if isinstance(node.ops[0], (ast.Is, ast.IsNot)) and node.comparators[0].value is None \
                else "new_label" if node.comparators[0].value == "" else None
            if field and raw(node.left, field):
                found.append((node.lineno, ast.unparse(node)))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr" \
                and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant) \
                and node.args[1].value in ("scale", "new_label", "multi_label") \
                and ast.unparse(node.args[0]) not in NOT_A_CLASS_MAP:
            found.append((node.lineno, ast.unparse(node)))
        elif isinstance(node, (ast.If, ast.IfExp, ast.While, ast.Assert)):
            truth(node.test)
        elif isinstance(node, ast.comprehension):
            for condition in node.ifs:
                truth(condition)
        elif isinstance(node, ast.BoolOp) or isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            truth(node)
    return sorted(set(found))


def test_the_task_kind_is_asked_not_told_by_raw_fields():
    """`class_map.scale is not None` (a number), `class_map.new_label` (an identity) and `class_map.multi_label`
    (tags) outside the kind's home were a branch per layer: each place asks the kind (kind.output, kind.split,
    kind.extra_labels, kind.one_class, kind.independent_outputs, kind.name ...) instead."""
    told = {str(p.relative_to(REPO)): lines for p in sorted(SRC.rglob("*.py"))
            if not is_kind_home(str(p.relative_to(REPO))) and (lines := raw_kind_tests(p.read_text()))}
    assert not told, f"task kind told by class map fields, not asked of kind_of(class_map) / class_map.kind: {told}"


@pytest.mark.parametrize("code", ["if data.class_map.scale is not None:\n    pass", "number = cmap.scale is None",
                                  "if getattr(class_map, 'new_label', ''):\n    pass",
                                  "k = 'top-k' if run.class_map.new_label else ''", "ok = x and not m.new_label",
                                  "names = [m for m in maps if m.new_label]", "same = cmap.new_label != ''",
                                  "if getattr(cmap, 'scale', None) is None:\n    pass",
                                  "if data.class_map.multi_label:\n    pass", "tags = cmap.multi_label",
                                  "check_full_fits(cfg, runs, class_map.multi_label)",
                                  "noun = 'tag' if comp.class_maps[comp.target].multi_label else 'class'",
                                  "ok = len(m.values) == 2 and not m.multi_label",
                                  "if getattr(class_map, 'multi_label', False):\n    pass"])
def test_the_kind_check_finds_a_raw_field(code):
    """The check above must be able to fail: each way of telling a kind by a raw field is found."""
    assert raw_kind_tests(code)


def test_the_kind_check_fails_on_a_planted_module(tmp_path, monkeypatch):
    """Planted in a layer, `class_map.multi_label` fails the check, naming the module; in the class map's home it
    does not (ClassMap's own methods read the field)."""
    for name in ("inference/planted.py", "data/class_maps.py"):
        (tmp_path / "src" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "src" / name).write_text("def fmt(class_map):\n    return 'tags' if class_map.multi_label else ''\n")
    monkeypatch.setattr(sys.modules[__name__], "SRC", tmp_path / "src")
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    with pytest.raises(AssertionError, match=r"\{'src/inference/planted.py': \[\(2, 'class_map.multi_label'\)\]\}"):
        test_the_task_kind_is_asked_not_told_by_raw_fields()


def test_the_kind_check_leaves_the_fields_values_alone():
    """Using a field's value is no kind test: the new answer written, the scale's clip and description."""
    assert raw_kind_tests("names = [*cmap.values, cmap.new_label]\nx = cmap.scale.clip(p)\nprint(cmap.scale.describe())"
                          "\nif getattr(converter, 'scale', None) is None:\n    pass\nif kind.output == 'number':\n"
                          "    pass\nm = ClassMap(c, tags, multi_label=True)\nauc = AUC(multi_label=True)\n"
                          "def counts(multi_label: bool):\n    return multi_label\nif kind.name == 'tags':\n    pass") == []


def test_every_training_setting_declares_its_role():
    """Resume checks, full-fit and the ledger read each TrainConfig field's role (src.core.roles)."""
    from src.core.roles import ROLES, role_of
    from src.core.settings import TrainConfig

    for field in dataclasses.fields(TrainConfig):
        assert role_of(TrainConfig, field.name) in ROLES.values(), field.name

    @dataclasses.dataclass
    class Planted(TrainConfig):
        new_flag: int = 0  # a field added without opt(..., role=...)

    with pytest.raises(KeyError, match="Planted.new_flag declares no role"):
        role_of(Planted, "new_flag")
    with pytest.raises(ValueError, match="opt role 'speed'"):
        from src.core.config import opt
        opt(1, "help", role="speed")


def test_the_layout_page_lists_every_module():
    """docs/layout.md is the map a newcomer reads: each module under src/ has its line there, none that is gone.

    A package's folder (kinds/segmentation/) is a line of its own, indented under the package, its modules
    indented under it.
    """
    import re

    listed, package, folder = set(), None, None
    for line in (REPO / "docs" / "layout.md").read_text().splitlines():
        if found := re.match(r"  (\w+)/\s", line):
            package = found.group(1)
        elif found := re.match(r"    ((?:\w+/)?\w+\.py)\s", line):  # a kind's folder: kinds/<kind>/<module>
            listed.add(f"src/{package}/{found.group(1)}")
        elif found := re.match(r"  (\w+\.py)\s", line):
            listed.add(f"src/{found.group(1)}")
    modules = {str(p.relative_to(REPO)) for p in SRC.rglob("*.py")}
    assert sorted(modules - listed) == [] and sorted(listed - modules) == []


def test_top_of_src_holds_only_commands():
    assert sorted(p.stem for p in SRC.glob("*.py") if p.stem != "__init__") == COMMANDS


@pytest.mark.parametrize("command", COMMANDS)
def test_help_works_without_tensorflow(command):
    code = ("import runpy, sys\n"
            f"sys.argv = ['{command}', '--help']\n"
            "try:\n"
            f"    runpy.run_module('src.{command}', run_name='__main__')\n"
            "except SystemExit as err:\n"
            "    assert err.code in (0, None), err.code\n"
            "heavy = sorted(m for m in ('tensorflow', 'keras', 'jax', 'matplotlib', 'kaggle') if m in sys.modules)\n"
            "print('HEAVY', heavy)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "usage" in result.stdout.lower()
    assert "HEAVY []" in result.stdout
