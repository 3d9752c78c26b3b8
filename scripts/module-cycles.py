#!/usr/bin/env python3
"""Lists the dependencies between the top-level modules of pool-runtime and reports cycles.

A module is a file `pool-runtime/src/X.rs` (or the directory `X/`, folded into one module, as
`config/*` is into `config`). A dependency is a `crate::X` path in code (comments and doc
links do not count), including the members of a grouped `use crate::{X, Y::..}`. Paths to
items of the crate root (`crate::PooledClient`) are not module dependencies.

Also checks that `config` depends on nothing but the modules it is allowed to (it is the
bottom of the map: every other module may depend on it).

Usage: scripts/module-cycles.py [pool-runtime/src]. Exit status 1 when a cycle (or a
forbidden `config` dependency) is found.
"""

import re
import sys
from pathlib import Path

CONFIG_MAY_USE = {"interceptor", "resolver", "error", "rules", "tls"}


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return "\n".join(re.sub(r"//.*", "", line) for line in text.splitlines())


def group_members(text, start):
    """The top-level names inside the braces opening at `start`."""
    depth, i, names, current = 0, start, [], ""
    while i < len(text):
        c = text[i]
        if c == "{":
            depth += 1
            if depth > 1:
                current += c
        elif c == "}":
            depth -= 1
            if depth == 0:
                names.append(current)
                break
            current += c
        elif c == "," and depth == 1:
            names.append(current)
            current = ""
        else:
            current += c
        i += 1
    out = []
    for name in names:
        m = re.match(r"\s*([A-Za-z_][A-Za-z0-9_]*)", name)
        if m:
            out.append(m.group(1))
    return out


def main():
    src = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent.parent / "pool-runtime/src")
    files = {}
    for path in sorted(src.rglob("*.rs")):
        rel = path.relative_to(src)
        if rel.parts == ("lib.rs",):
            continue
        module = rel.parts[0].removesuffix(".rs")
        files.setdefault(module, []).append(path)
    modules = set(files)
    deps = {m: set() for m in modules}
    for module, paths in files.items():
        for path in paths:
            code = strip_comments(path.read_text())
            for m in re.finditer(r"\bcrate\s*::\s*(\{|[A-Za-z_][A-Za-z0-9_]*)", code):
                names = group_members(code, m.start(1)) if m.group(1) == "{" else [m.group(1)]
                for name in names:
                    if name in modules and name != module:
                        deps[module].add(name)

    print("dependencies (module -> the modules it uses):")
    width = max(map(len, modules))
    for module in sorted(modules):
        print(f"  {module:<{width}} -> {', '.join(sorted(deps[module])) or '-'}")

    # Tarjan's strongly connected components: a component of two or more is a cycle.
    index, low, stack, on_stack, sccs, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(deps[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                scc.append(w)
                if w == v:
                    break
            sccs.append(sorted(scc))

    sys.setrecursionlimit(10000)
    for v in sorted(modules):
        if v not in index:
            visit(v)
    cycles = [s for s in sccs if len(s) > 1]
    failed = False
    if cycles:
        failed = True
        print("cycles:")
        for scc in cycles:
            members = set(scc)
            edges = [f"{a} -> {b}" for a in scc for b in sorted(deps[a]) if b in members]
            print(f"  {{{', '.join(scc)}}}: {'; '.join(edges)}")
    else:
        print("cycles: none")
    if "config" in deps:
        extra = sorted(deps["config"] - CONFIG_MAY_USE)
        if extra:
            failed = True
            print(f"config depends on modules it must not: {', '.join(extra)}")
        else:
            print(f"config depends only on: {', '.join(sorted(deps['config'])) or '-'} (allowed)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
