#!/usr/bin/env python3
"""Checks that every target's manifest matches its imports (run by scripts/check_dependencies.sh).

For the root package, every package under Packages/ and Benchmarks/, it reads the manifest as SwiftPM
resolves it (`swift package dump-package`) and the `import` lines of each target's sources, then fails
when
  - a target imports a module its manifest does not declare (directly, as a target or a product),
  - a target declares a dependency it never imports,
  - anything outside the Checkpoint package imports HDF5 (the `_CHDF5` shim or a module named like it).
It prints the dependency graph of the local packages (package -> packages it depends on) and, per
target, the modules it imports.
"""
import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Modules of the toolchain and the system: never declared in a manifest.
SYSTEM = {
    "Foundation", "FoundationEssentials", "FoundationNetworking", "FoundationXML", "Dispatch", "Glibc",
    "Musl", "Darwin", "Testing", "XCTest", "Synchronization", "_Concurrency", "Swift", "os",
    "SwiftShims", "Android", "WinSDK", "_StringProcessing", "RegexBuilder", "CryptoKit",
}
# External products whose module names differ from the product name.
PRODUCT_MODULES = {
    ("Numerics", "swift-numerics"): {"Numerics", "RealModule", "ComplexModule"},
    ("Collections", "swift-collections"): {"Collections", "DequeModule", "OrderedCollections", "HeapModule"},
    ("Benchmark", "package-benchmark"): {"Benchmark"},
    ("Benchmark", "benchmark"): {"Benchmark"},
}
IMPORT = re.compile(
    r"^\s*(?:@_exported\s+|@testable\s+|@_implementationOnly\s+|internal\s+|public\s+|package\s+)*"
    r"import\s+(?:(?:struct|class|enum|protocol|func|var|let|typealias)\s+)?([A-Za-z_][A-Za-z0-9_]*)",
    re.M)
# Swift multi-line string literals (embedded Python scripts in tests) and line comments.
STRING_BLOCK = re.compile(r'"""(?:.|\n)*?"""')
LINE_COMMENT = re.compile(r"//[^\n]*")
C_INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', re.M)


def dump(package_dir):
    out = subprocess.run(["swift", "package", "dump-package", "--package-path", package_dir],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def target_dir(package_dir, target):
    if target.get("path"):
        return os.path.join(package_dir, target["path"])
    base = "Tests" if target["type"] == "test" else "Sources"
    return os.path.join(package_dir, base, target["name"])


def sources(directory):
    for dirpath, _, files in os.walk(directory):
        for f in files:
            if f.endswith((".swift", ".c", ".h", ".modulemap")):
                yield os.path.join(dirpath, f)


def main():
    package_dirs = [ROOT] + sorted(
        os.path.join(ROOT, "Packages", d) for d in os.listdir(os.path.join(ROOT, "Packages"))
        if os.path.exists(os.path.join(ROOT, "Packages", d, "Package.swift")))
    if os.path.exists(os.path.join(ROOT, "Benchmarks", "Package.swift")):
        package_dirs.append(os.path.join(ROOT, "Benchmarks"))
    manifests = {d: dump(d) for d in package_dirs}
    # Product -> modules, for the local packages (by package directory name and manifest name).
    local_products = {}
    for d, m in manifests.items():
        for p in m["products"]:
            for key in (os.path.basename(d), m["name"]):
                local_products[(p["name"], key)] = set(p["targets"])
    problems = []
    graph = {}
    for d, m in manifests.items():
        pkg = os.path.relpath(d, ROOT) if d != ROOT else "(root)"
        deps_of_package = set()
        target_names = {t["name"] for t in m["targets"]}
        for t in m["targets"]:
            if t["type"] in ("system", "binary", "plugin", "macro"):
                continue
            declared = {}  # module -> dependency label
            for dep in t.get("dependencies", []):
                if "byName" in dep:
                    name = dep["byName"][0]
                    declared[name] = name
                elif "target" in dep:
                    name = dep["target"][0]
                    declared[name] = name
                elif "product" in dep:
                    name, package = dep["product"][0], dep["product"][1]
                    deps_of_package.add(package)
                    modules = local_products.get((name, package)) or PRODUCT_MODULES.get(
                        (name, package)) or {name}
                    for mod in modules:
                        declared[mod] = f"{package}:{name}"
            imported = set()
            hdf5 = False
            directory = target_dir(d, t)
            for f in sources(directory):
                text = open(f, encoding="utf-8", errors="replace").read()
                if f.endswith(".swift"):
                    code = LINE_COMMENT.sub("", STRING_BLOCK.sub('""', text))
                    imported |= set(IMPORT.findall(code))
                else:
                    hdf5 |= any(i.startswith("hdf5") or i.startswith("H5") for i in C_INCLUDE.findall(text))
            own = t["name"]
            imported.discard(own)
            undeclared = sorted(i for i in imported if i not in SYSTEM and i not in declared)
            labels_used = {declared[i] for i in imported if i in declared}
            unused = sorted({lab for lab in declared.values() if lab not in labels_used})
            where = f"{pkg} target {own}"
            for i in undeclared:
                problems.append(f"{where}: imports {i} but its manifest does not declare it")
            for lab in unused:
                # A C shim target can be declared only to make its headers visible to a sibling's C code.
                if lab in target_names and any(
                        x["name"] == lab and x["type"] == "system" for x in m["targets"]):
                    continue
                problems.append(f"{where}: declares {lab} but never imports it")
            in_checkpoint = os.path.basename(d) == "Checkpoint"
            uses_hdf5 = hdf5 or any("HDF5" in i.upper() for i in imported)
            if uses_hdf5 and not in_checkpoint:
                problems.append(f"{where}: uses HDF5, which only the Checkpoint package may")
            print(f"  {where}: imports {', '.join(sorted(i for i in imported if i not in SYSTEM)) or '-'}")
        local = sorted(p for p in deps_of_package if os.path.exists(os.path.join(ROOT, "Packages", p)))
        graph[pkg] = local
    print("\nPackage graph (local dependencies):")
    for pkg, deps in graph.items():
        print(f"  {pkg} -> {', '.join(deps) if deps else '(none)'}")
    if problems:
        print(f"\ncheck_dependencies: {len(problems)} problem(s):", file=sys.stderr)
        for p in problems:
            print("  " + p, file=sys.stderr)
        return 1
    print("\ncheck_dependencies: every manifest matches its imports; HDF5 only in Checkpoint")
    return 0


if __name__ == "__main__":
    sys.exit(main())
