#!/usr/bin/env python3
"""Writes src/store/dispatch.rs: the store's traits implemented on `Db` by handing each
call to the backend the archive runs on (SQLite or PostgreSQL).

Every method of every aggregate trait is one line of delegation, so the file is generated
from the traits in src/store/*.rs. Run it after changing a trait:
    python3 scripts/store-dispatch.py
"""
import pathlib
import re
import subprocess

ROOT = pathlib.Path(__file__).resolve().parent.parent
STORE = ROOT / "src" / "store"


def split_top(text, sep=","):
    """Splits at `sep` outside brackets."""
    parts, depth, cur = [], 0, ""
    for i, ch in enumerate(text):
        if ch in "<([{":
            depth += 1
        elif ch in ">)]}" and not (ch == ">" and i > 0 and text[i - 1] == "-"):
            depth -= 1
        if ch == sep and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return [p.strip() for p in parts if p.strip()]


def matching(text, start):
    """Index of the bracket closing the one at `start`."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] in "<([{":
            depth += 1
        elif text[i] in ">)]}" and not (text[i] == ">" and text[i - 1] == "-"):
            depth -= 1
            if depth == 0:
                return i
    raise ValueError(text[start:start + 80])


def methods(body):
    """(name, params, return type, is_async) of each method declared without a body."""
    found = []
    for m in re.finditer(r"\n    fn (\w+)\(", body):
        name = m.group(1)
        open_paren = m.end() - 1
        close = matching(body, open_paren)
        params = split_top(body[open_paren + 1:close])
        rest = body[close + 1:]
        end = min(i for i in (rest.find(";"), rest.find("{")) if i >= 0)
        if rest[end] == "{":
            continue  # a default method
        ret = rest[:end].strip()
        if ret.startswith("->"):
            ret = ret[2:].strip()
        is_async = ret.startswith("impl Future<Output =")
        if is_async:
            inner_start = ret.index("<")
            inner = ret[inner_start + 1:matching(ret, inner_start)]
            ret = inner.split("=", 1)[1].strip()
        found.append((name, params, ret, is_async))
    return found


def main():
    out = []
    imports = set()
    uses = {}
    impls = []
    for path in sorted(STORE.glob("*.rs")):
        text = re.sub(r"//[^\n]*", "", path.read_text())
        if re.search(r"\npub trait \w+", text):
            # The names the traits' signatures use, as their files import them.
            for use in re.findall(r"\nuse ([^;]*);", text):
                use = "".join(use.split())
                use = use.replace("super::", "crate::store::")
                grouped = re.fullmatch(r"(.*)::\{(.*)\}", use)
                items = [f"{grouped.group(1)}::{name}" for name in grouped.group(2).split(",")
                         if name] if grouped else [use]
                for item in items:
                    uses[item.split("::")[-1]] = item
        for m in re.finditer(r"\npub trait (\w+)[^{]*\{", text):
            trait = m.group(1)
            start = m.end() - 1
            body = text[start:matching(text, start) + 1]
            module = path.stem
            imports.add(f"use crate::store::{module}::*;")
            lines = [f"impl {trait} for Db {{"]
            for name, params, ret, is_async in methods(body):
                args = [p.split(":")[0].strip() for p in params if "self" not in p]
                call_args = ", ".join(args)
                signature = ", ".join(params)
                arrow = f" -> {ret}" if ret else ""
                prefix = "async fn" if is_async else "fn"
                wait = ".await" if is_async else ""
                if any(p.startswith("&self") for p in params):
                    lines.append(f"    {prefix} {name}({signature}){arrow} {{")
                    lines.append("        match self {")
                    lines.append(f"            Db::Sqlite(store) => store.{name}({call_args}){wait},")
                    lines.append(f"            Db::Postgres(store) => store.{name}({call_args}){wait},")
                    lines.append("        }")
                    lines.append("    }")
                else:
                    assert args and args[0] == "tx", (trait, name)
                    lines.append(f"    {prefix} {name}({signature}){arrow} {{")
                    lines.append("        match tx.0 {")
                    lines.append(f"            TxInner::Sqlite(_) => SqliteStore::{name}({call_args}){wait},")
                    lines.append(f"            TxInner::Postgres(_) => PgStore::{name}({call_args}){wait},")
                    lines.append("        }")
                    lines.append("    }")
            lines.append("}")
            impls.append("\n".join(lines))
    out.append("//! The store's traits on [`Db`]: each call handed to the backend the archive runs on.")
    out.append("//! Generated by `scripts/store-dispatch.py` from the traits; do not edit by hand.")
    out.append("")
    out.append("#![allow(unused_imports, clippy::too_many_arguments)]")
    out.append("")
    out.append("use crate::store::base::*;")
    out.append("use crate::store::db::Db;")
    out.append("use crate::store::sql::postgres::PgStore;")
    out.append("use crate::store::sql::sqlite::SqliteStore;")
    out.extend(sorted(imports | {f"use {item};" for item in uses.values()}))
    out.append("")
    out.append("\n\n".join(impls))
    target = STORE / "dispatch.rs"
    target.write_text("\n".join(out) + "\n")
    subprocess.run(["rustfmt", "--edition", "2021", str(target)], check=True)


main()
