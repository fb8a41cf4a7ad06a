#!/usr/bin/env python3
"""The layer check of the app crate (src/), run by .ci/run before the tests.

Every `crate::`, `super::` and `self::` path in a file of src/ is an edge from that file to
the module file it names. The check fails when
- the edges make a cycle among files (a file imports one that, directly or through others,
  imports it back);
- an edge runs from a lower layer to a higher one (the table below);
- a file outside the front ends and the composition root names `axum`;
- a file outside the store names `sqlx`.

Usage: .ci/layers.py [--edges] [SRC_DIR]
"""
import os
import re
import sys

# Layers, from the bottom up. A module path belongs to the first prefix it starts with.
# A file may import its own layer (without cycles) and every layer below it.
LAYERS = [
    ("domain", ["domain", "config", "metrics"]),
    ("store", ["store"]),
    ("core", ["app", "error"]),
    ("features", ["access", "audit", "ingest", "search", "legal", "ops", "feeds"]),
    ("front ends", ["http", "cli", "mllp", "fhir", "dicomweb"]),
    ("composition root", ["startup", "main", "lib", "bin"]),
]
AXUM_ALLOWED = ["http", "fhir", "dicomweb", "startup", "main", "lib"]
SQLX_ALLOWED = ["store"]


def module_of(rel):
    """src-relative file path -> module path tuple."""
    parts = rel[:-3].split(os.sep)
    if parts[-1] == "mod":
        parts = parts[:-1]
    if parts == ["lib"] or parts == ["main"]:
        return (parts[0],)
    return tuple(parts)


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    out = []
    for line in text.splitlines():
        # drop // comments (good enough: paths in string literals are rare and harmless)
        i = line.find("//")
        out.append(line if i < 0 else line[:i])
    return "\n".join(out)


def strip_tests(text):
    """Drop `#[cfg(test)] mod tests { ... }` blocks: tests may reach anywhere."""
    while True:
        m = re.search(r"#\[cfg\(test\)\]\s*(pub\s+)?mod\s+\w+\s*\{", text)
        if not m:
            return text
        depth, i = 0, m.end() - 1
        while i < len(text):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    break
            i += 1
        text = text[: m.start()] + text[i + 1 :]


def expand_use(tree):
    """'a::{b, c::{d, e}}' -> ['a::b', 'a::c::d', 'a::c::e']"""
    tree = re.sub(r"\s+", "", tree)
    i = tree.find("{")
    if i < 0:
        return [tree.split(" as ")[0]]
    prefix, inner = tree[:i], tree[i + 1 : tree.rfind("}")]
    parts, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur += ch
    parts.append(cur)
    out = []
    for p in parts:
        if p:
            for e in expand_use(p):
                out.append(prefix + e if e != "self" else prefix.rstrip(":"))
    return out


def paths_in(text):
    paths = []
    # a module's own children, named without `self::` (`mod documents;` ... `documents::upload`)
    for child in re.findall(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;", text, flags=re.M):
        if re.search(r"(?<![\w:])%s::" % child, re.sub(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+\w+\s*;", "", text, flags=re.M)):
            paths.append("self::" + child)
    for m in re.finditer(r"\buse\s+((?:crate|super|self)(?:::)?[^;]*);", text, flags=re.S):
        paths += expand_use(m.group(1))
    body = re.sub(r"\buse\s+[^;]*;", "", text, flags=re.S)
    paths += re.findall(r"\b(?:crate|super|self)(?:::\w+)+", body)
    return paths


def resolve(path, here, modules):
    """The module file a path names: the longest prefix of it that is a module of ours.
    `self` is the file's own module and `super` its parent, whether it is `x.rs` or
    `x/mod.rs`."""
    segs = path.split("::")
    if segs[0] == "crate":
        cur, rest = [], segs[1:]
    elif segs[0] in ("super", "self"):
        cur, rest = list(here), segs
        while rest and rest[0] in ("super", "self"):
            if rest[0] == "super":
                cur = cur[:-1]
            rest = rest[1:]
    else:
        return None
    if cur in (["lib"], ["main"]):
        cur = []
    best = tuple(cur) if tuple(cur) in modules else None
    for s in rest:
        cur = cur + [s]
        if tuple(cur) in modules:
            best = tuple(cur)
        else:
            break
    return best


def layer_of(mod):
    for n, (name, prefixes) in enumerate(LAYERS):
        if mod[0] in prefixes:
            return n
    return None


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    src = args[0] if args else os.path.join(os.path.dirname(__file__), "..", "src")
    files = {}
    for root, _, names in os.walk(src):
        for n in names:
            if n.endswith(".rs"):
                rel = os.path.relpath(os.path.join(root, n), src)
                files[module_of(rel)] = rel
    modules = set(files)
    edges = {m: set() for m in modules}
    problems = []
    for mod, rel in files.items():
        raw = open(os.path.join(src, rel)).read()
        text = strip_tests(strip_comments(raw))
        for p in paths_in(text):
            t = resolve(p, mod, modules)
            if t and t != mod and t not in [("lib",), ("main",)]:
                edges[mod].add(t)
        if re.search(r"\baxum\b", text) and mod[0] not in AXUM_ALLOWED:
            problems.append(f"src/{rel}: uses axum outside the front ends and the composition root")
        if re.search(r"\bsqlx\b", text) and mod[0] not in SQLX_ALLOWED:
            problems.append(f"src/{rel}: uses sqlx outside the store")
        if layer_of(mod) is None:
            problems.append(f"src/{rel}: in no layer (add its folder to the table in .ci/layers.py)")
    for a, ts in edges.items():
        la = layer_of(a)
        for b in ts:
            lb = layer_of(b)
            if la is not None and lb is not None and lb > la:
                problems.append(
                    f"src/{files[a]} -> src/{files[b]}: upward ({LAYERS[la][0]} -> {LAYERS[lb][0]})"
                )
    # cycles: Tarjan's strongly connected components
    index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                strong(w)
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
            if len(comp) > 1:
                sccs.append(comp)

    sys.setrecursionlimit(10000)
    for v in sorted(modules):
        if v not in index:
            strong(v)
    for comp in sccs:
        names = sorted("src/" + files[m] for m in comp)
        ties = [f"  src/{files[a]} -> src/{files[b]}" for a in comp for b in edges[a] if b in comp]
        problems.append(f"import cycle of {len(comp)} files: " + ", ".join(names) + "\n" + "\n".join(sorted(ties)))
    if "--edges" in sys.argv:
        for a in sorted(edges):
            for b in sorted(edges[a]):
                print(f"src/{files[a]} -> src/{files[b]}")
    n_edges = sum(len(t) for t in edges.values())
    if problems:
        print("\n".join(problems))
        print(f"layer check: {len(problems)} problems in {len(files)} files, {n_edges} imports")
        return 1
    print(f"layer check: {len(files)} files, {n_edges} imports, no cycle, none upward")
    return 0


if __name__ == "__main__":
    sys.exit(main())
