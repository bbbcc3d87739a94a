"""tvwidget uses its dependencies through their public API only: no underscore name of theirs, no override of one."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "tvwidget"
# Documented public API despite the underscore: Flask's "Notes On Proxies" names it as the way to reach
# the object behind ``current_app`` (a thread's or a signal's sender must not be the proxy).
DOCUMENTED = {"_get_current_object"}
# Modules a dependency does not document for use: Jinja's compiler is its internals.
INTERNAL_MODULES = {"jinja2.compiler"}


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _external_bases(tree: ast.Module) -> set[str]:
    """Names bound by importing from outside tvwidget (``import jwt``, ``from itsdangerous import Signer``)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names |= {alias.asname or alias.name for alias in node.names}
    return names


def _root(node) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Call, ast.Subscript)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def _own_names(trees) -> set[str]:
    """Every underscore name tvwidget itself defines (functions, classes, variables, its own classes' attributes)."""
    own = set()
    for tree in trees.values():
        external = _external_bases(tree)
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                own.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                own.add(node.id)
            elif isinstance(node, ast.arg):
                own.add(node.arg)
            elif isinstance(node, ast.alias) and node.asname:
                own.add(node.asname)
        for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
            if not any(_root(base) in external for base in cls.bases):
                own |= {n.attr for n in ast.walk(cls) if isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store)}
    return own


def dependency_underscore_uses(sources: dict[str, str]) -> list[str]:
    """Return where ``sources`` (name -> Python text) use or override an underscore name of a dependency."""
    trees = {name: ast.parse(text) for name, text in sources.items()}
    own = _own_names(trees)
    found = []
    for name, tree in trees.items():
        external = _external_bases(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and not node.level:
                found += [f"{name}:{node.lineno} from {node.module} import {alias.name}"
                          for alias in node.names if _private(alias.name) or node.module in INTERNAL_MODULES
                          or any(_private(part) for part in (node.module or "").split("."))]
            elif isinstance(node, ast.Import):
                found += [f"{name}:{node.lineno} import {alias.name}" for alias in node.names
                          if alias.name in INTERNAL_MODULES or any(_private(part) for part in alias.name.split("."))]
            elif isinstance(node, ast.Attribute) and _private(node.attr) and node.attr not in DOCUMENTED \
                    and (node.attr not in own or _root(node) in external):
                found.append(f"{name}:{node.lineno} .{node.attr}")
            elif isinstance(node, ast.ClassDef) and any(_root(base) in external for base in node.bases):
                found += [f"{name}:{item.lineno} {node.name} overrides {item.name}" for item in node.body
                          if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and _private(item.name)]
    return found


def test_no_module_uses_or_overrides_a_dependencys_underscore_names():
    sources = {str(path.relative_to(PACKAGE.parent)): path.read_text() for path in sorted(PACKAGE.rglob("*.py"))}
    assert dependency_underscore_uses(sources) == []


def test_the_scan_finds_each_kind_of_private_use():
    found = dependency_underscore_uses({"example.py": """
import jwt
from jinja2.compiler import CodeGenerator
from flask_babel.speaklater import LazyString


class Tokens(jwt.PyJWS):
    def _decode_base64url_segment(self, segment):
        return self._get_sig_options()


def freeze(value: LazyString):
    return value._func, jwt.api_jws._jws_global_obj
"""})
    assert found == ["example.py:3 from jinja2.compiler import CodeGenerator",
                     "example.py:8 Tokens overrides _decode_base64url_segment",
                     "example.py:13 ._func", "example.py:13 ._jws_global_obj", "example.py:9 ._get_sig_options"]
