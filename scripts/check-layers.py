#!/usr/bin/env python3
"""Checks that the crate's imports run one way: shared types <- store <- runtime <- api
<- node, with no circle of imports between files.

Reads every `crate::…` and `super::…` path in src/**/*.rs (comments and strings
stripped; `use` trees flattened), resolves it to the file that defines it (names that
lib.rs re-exports resolve to their source), and fails when
  - a file imports from a layer above its own, or
  - files import each other in a circle (any strongly connected set of 2+ files).

    python3 scripts/check-layers.py [SRC_DIR] [--graph]
"""
import re
import sys
from pathlib import Path

LAYERS = {"shared": 0, "store": 1, "runtime": 2, "api": 3, "node": 4}


def module_of(path: Path, src: Path) -> tuple:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] in ("mod", "lib"):
        parts = parts[:-1]
    return tuple(parts)


def layer_of(module: tuple) -> str:
    if module and module[0] in LAYERS:
        return module[0]
    return "shared"


def strip(code: str) -> str:
    """The code without comments, string and char literals, and inline `mod x { … }`
    blocks (unit tests, whose `super` is the file itself)."""
    out, i, n = [], 0, len(code)
    while i < n:
        if code.startswith("//", i):
            i = code.find("\n", i)
            i = n if i < 0 else i
        elif code.startswith("/*", i):
            i = code.find("*/", i + 2) + 2
        elif code[i] == "r" and re.match(r'r#*"', code[i:]) and not (i and (code[i - 1].isalnum() or code[i - 1] == "_")):
            hashes = re.match(r'r(#*)"', code[i:]).group(1)
            end = code.find('"' + hashes, i + len(hashes) + 2)
            i = end + 1 + len(hashes)
            out.append('""')
        elif code[i] == '"':
            i += 1
            while i < n and code[i] != '"':
                i += 2 if code[i] == "\\" else 1
            i += 1
            out.append('""')
        elif code[i] == "'" and re.match(r"'(\\.[^']*|[^'\\])'", code[i:]):
            i += len(re.match(r"'(\\.[^']*|[^'\\])'", code[i:]).group(0))
            out.append("' '")
        else:
            out.append(code[i])
            i += 1
    text = "".join(out)
    while True:
        m = re.search(r"\bmod\s+[a-z_][a-z0-9_]*\s*\{", text)
        if not m:
            return text
        depth, j = 0, m.end() - 1
        for j in range(m.end() - 1, len(text)):
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            if depth == 0:
                break
        text = text[: m.start()] + text[j + 1 :]


def flatten(tree: str, prefix: list) -> list:
    """`a::{b, c::{d, e}}` -> [a::b, a::c::d, a::c::e]."""
    tree = tree.strip()
    out = []
    depth, start, items = 0, 0, []
    for i, ch in enumerate(tree):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif ch == "," and depth == 0:
            items.append(tree[start:i])
            start = i + 1
    items.append(tree[start:])
    for item in (x.strip() for x in items):
        if not item:
            continue
        brace = item.find("{")
        if brace >= 0:
            head = [p for p in item[:brace].split("::") if p]
            out += flatten(item[brace + 1 : item.rindex("}")], prefix + head)
        else:
            name = item.split(" as ")[0].strip()
            out.append(prefix + [p for p in name.split("::") if p])
    return out


def paths_in(code: str) -> list:
    found = []
    for m in re.finditer(r"\buse\s+((?:crate|super)\s*::[^;]*);", code):
        found += flatten(m.group(1), [])
    without_uses = re.sub(r"\buse\s+[^;]*;", "", code)
    for m in re.finditer(r"\b((?:crate|super)(?:\s*::\s*[A-Za-z_][A-Za-z0-9_]*)+)", without_uses):
        found.append([p.strip() for p in m.group(1).split("::")])
    return found


def main() -> int:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    src = Path(args[0] if args else Path(__file__).resolve().parent.parent / "src")
    files = sorted(src.rglob("*.rs"))
    modules = {module_of(f, src): f for f in files}
    # Names a module file (lib.rs, mod.rs) re-exports resolve to their source.
    reexports = {}
    children = {}
    for module, f in modules.items():
        if f.name not in ("lib.rs", "mod.rs"):
            continue
        code = strip(f.read_text())
        kids = set(re.findall(r"\bmod\s+([a-z_][a-z0-9_]*)\s*;", code))
        children[module] = kids
        for m in re.finditer(r"\bpub(?:\([a-z]+\))?\s+use\s+([^;]*);", code):
            for path in flatten(m.group(1), []):
                if path[0] == "crate":
                    source = tuple(path[1:-1])
                elif path[0] in kids:
                    source = module + tuple(path[:-1])
                else:
                    continue
                reexports.setdefault(module, {})[path[-1]] = source

    def resolve(path: list, here: tuple) -> tuple:
        if path[0] == "crate":
            full = path[1:]
        elif path[0] == "super":
            ups = 0
            while path[ups] == "super":
                ups += 1
            full = list(here[: len(here) - ups]) + path[ups:]
        else:  # a child module of a lib.rs / mod.rs
            full = list(here) + path
        for n in range(len(full), -1, -1):
            candidate = tuple(full[:n])
            if candidate in modules:
                if n < len(full) and full[n] in reexports.get(candidate, {}):
                    source = reexports[candidate][full[n]]
                    return source if source in modules else candidate
                return candidate
        return None

    edges = {m: set() for m in modules}
    for module, f in modules.items():
        code = strip(f.read_text())
        paths = paths_in(code)
        kids = children.get(module, set())
        for m in re.finditer(r"\buse\s+([^;]*);", code):
            for path in flatten(m.group(1), []):
                if path and path[0] in kids:
                    paths.append(path)
        for path in paths:
            target = resolve(path, module)
            if target is None or target == module:
                continue
            # A module file declaring or re-exporting its own children is their parent,
            # not an importer.
            if f.name in ("lib.rs", "mod.rs") and target[: len(module)] == module:
                continue
            edges[module].add(target)

    problems = []
    for a, targets in edges.items():
        for b in targets:
            if LAYERS[layer_of(b)] > LAYERS[layer_of(a)]:
                problems.append(
                    f"layer: {modules[a].relative_to(src)} ({layer_of(a)}) imports "
                    f"{modules[b].relative_to(src)} ({layer_of(b)})"
                )

    # Tarjan's strongly connected components.
    index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            sccs.append(comp)

    sys.setrecursionlimit(10000)
    for v in edges:
        if v not in index:
            visit(v)
    for comp in sccs:
        files_in = sorted(str(modules[m].relative_to(src)) for m in comp)
        if len(comp) > 1:
            problems.append(f"circle of {len(comp)} files: {', '.join(files_in)}")

    if "--graph" in sys.argv:
        for a in sorted(edges):
            print(f"{modules[a].relative_to(src)} -> "
                  + ", ".join(sorted(str(modules[b].relative_to(src)) for b in edges[a])))
    for p in problems:
        print(p)
    print(f"check-layers: {len(modules)} files, "
          f"{sum(len(t) for t in edges.values())} imports, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
