#!/usr/bin/env python3
"""Foreign types in the public API: the stable-toolchain stand-in for cargo-check-external-types.

Reads the rustdoc JSON of one crate (`RUSTC_BOOTSTRAP=1 cargo rustdoc -p CRATE --all-features --
-Z unstable-options --output-format json`), walks every public item reachable from the crate
root (re-exports, fields, variants, inherent methods, trait impls; doc-hidden items and
blanket or auto-trait impls left out), and lists each type path of another crate that their
signatures name. Crates on the allow-list below may appear (std, the http and tower
vocabulary, serde, our own crates, and the documented exceptions); anything else fails.

Usage: external-types.py target/doc/tower_cognito.json [--allow crate,crate] [-v]
"""
import json
import sys

# Crates whose types the public API may name, and why.
ALLOWED = {
    "std", "core", "alloc",
    "http", "http_body", "bytes",            # the request and response vocabulary
    "tower_service", "tower_layer",          # what a tower middleware is
    "futures_core",                          # Stream/Future traits
    "axum_core",                             # the axum extractor (feature axum)
    "serde", "serde_core", "serde_json",     # claims types and JSON views
    "tower_cognito_client", "tower_cognito", "tower_cognito_testing",  # our own crates
    # Documented exception: PostgresStore::from_pool / PostgresRefreshStore::from_pool take the
    # application's deadpool pool (re-exported as session::deadpool_postgres).
    "deadpool_postgres", "deadpool",
}


def main(path):
    if "--allow" in sys.argv:
        ALLOWED.update(sys.argv[sys.argv.index("--allow") + 1].split(","))
    doc = json.load(open(path))
    index, paths, crates = doc["index"], doc["paths"], doc["external_crates"]

    def crate_of(item_id):
        entry = paths.get(str(item_id))
        if entry is None or entry["crate_id"] == 0:
            return None, None
        name = crates[str(entry["crate_id"])]["name"]
        return name, "::".join(entry["path"])

    def hidden(item):
        return "hidden" in json.dumps(item.get("attrs", []))

    seen, found = set(), {}

    def refs(node, where):
        if isinstance(node, dict):
            # A path to an item: a type (`resolved_path`), a trait of an impl or a bound.
            if isinstance(node.get("path"), str) and isinstance(node.get("id"), int):
                name, full = crate_of(node["id"])
                if name is not None:
                    found.setdefault((name, full), set()).add(where)
            for value in node.values():
                refs(value, where)
        elif isinstance(node, list):
            for value in node:
                refs(value, where)

    def visit(item_id, where, public_only=True):
        key = str(item_id)
        if key in seen or key not in index:
            return
        item = index[key]
        if item["crate_id"] != 0 or hidden(item):
            return
        if public_only and item["visibility"] not in ("public", "default"):
            return
        seen.add(key)
        name = item.get("name") or where
        here = f"{where}::{name}" if item.get("name") else where
        inner = item["inner"]
        (kind, body), = inner.items()
        if kind == "module":
            for child in body["items"]:
                visit(child, here)
        elif kind == "use":
            if body.get("id") is not None:
                visit(body["id"], where)
        elif kind in ("struct", "enum", "union"):
            fields = body.get("kind", {})
            if isinstance(fields, dict):
                for shape in fields.values():
                    if isinstance(shape, dict):
                        for f in shape.get("fields", []) or []:
                            visit(f, here)
                    elif isinstance(shape, list):
                        for f in shape:
                            if f is not None:
                                visit(f, here)
            for v in body.get("variants", []):
                visit(v, here)
            refs(body.get("generics"), here)
            for imp in body.get("impls", []):
                visit(imp, here, public_only=False)
        elif kind == "impl":
            if body.get("is_synthetic") or body.get("blanket_impl") is not None:
                return
            # pin_project! writes an `impl Unpin` naming its own doc-hidden helper: not API.
            trait = body.get("trait") or {}
            if trait.get("path") in ("Unpin", "core::marker::Unpin", "std::marker::Unpin"):
                return
            refs(body.get("trait"), here)
            refs(body.get("for"), here)
            refs(body.get("generics"), here)
            inherent = body.get("trait") is None
            for child in body["items"]:
                visit(child, here, public_only=inherent)
        elif kind == "trait":
            refs(body.get("generics"), here)
            refs(body.get("bounds"), here)
            for child in body["items"]:
                visit(child, here, public_only=False)
        else:
            refs(body, here)

    visit(doc["root"], "")
    bad = {k: v for k, v in found.items() if k[0] not in ALLOWED}
    for (name, full), where in sorted(found.items()):
        mark = "ALLOWED" if name in ALLOWED else "FOREIGN"
        if mark == "FOREIGN" or "-v" in sys.argv:
            print(f"{mark} {full}  (in {', '.join(sorted(where)[:3])})")
    print(f"{len(seen)} public items walked; {len(found)} foreign paths named, {len(bad)} not allowed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
