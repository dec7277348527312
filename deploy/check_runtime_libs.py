#!/usr/bin/env python3
"""Check that the Dockerfile's runtime stage provides every shared library the
built binaries need.

No Docker engine runs here, so the check works from this machine's packages:
each binary's `ldd` libraries are mapped to Debian packages (dpkg's file lists); the
runtime stage provides the packages its `apt-get install` lists, everything
they depend on (transitively, from dpkg's Depends / Pre-Depends), and what
bookworm-slim itself contains (Essential and priority-required packages, and
their dependencies). A library whose package is not provided fails the check.

    deploy/check_runtime_libs.py --dockerfile Dockerfile build/bin/m3serve-server ...

Exit status: 0 all provided, 1 something missing (listed), 2 usage / setup error.
"""

import argparse
import os
import re
import subprocess
import sys


def runtime_packages(dockerfile):
    """Packages apt-get installs in the last stage of the Dockerfile."""
    text = open(dockerfile).read().replace("\\\n", " ")
    stages = re.split(r"^FROM\s", text, flags=re.M)
    last = stages[-1]
    packages = set()
    for m in re.finditer(r"apt-get\s+install\s+([^&;|\n]*)", last):
        for word in m.group(1).split():
            if not word.startswith("-"):
                packages.add(word.split("=")[0])
    return packages


def dpkg_fields():
    """package -> (essential, priority, [dependency alternatives])."""
    out = subprocess.run(["dpkg-query", "-W", "-f=${Package}\t${Essential}\t${Priority}\t${Pre-Depends}, ${Depends}\t${Provides}\n"],
                         capture_output=True, text=True, check=True).stdout
    info, provides = {}, {}
    for line in out.splitlines():
        name, essential, priority, deps, prov = (line.split("\t") + [""] * 5)[:5]
        alternatives = []
        for dep in deps.split(","):
            dep = dep.strip()
            if not dep:
                continue
            alternatives.append([re.split(r"[\s(:]", a.strip())[0] for a in dep.split("|") if a.strip()])
        info[name] = (essential == "yes", priority, alternatives)
        for p in prov.split(","):
            p = re.split(r"[\s(]", p.strip())[0]
            if p:
                provides.setdefault(p, set()).add(name)
    return info, provides


def closure(roots, info, provides):
    seen, stack = set(), list(roots)
    while stack:
        pkg = stack.pop()
        if pkg in seen:
            continue
        seen.add(pkg)
        for alternatives in info.get(pkg, (False, "", []))[2]:
            for alt in alternatives:
                candidates = [alt] if alt in info else sorted(provides.get(alt, []))
                if candidates:
                    stack.append(candidates[0])
                    break
    return seen


def libraries(binary):
    out = subprocess.run(["ldd", binary], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"check_runtime_libs: ldd {binary} failed: {out.stderr.strip()}")
    libs = {}
    for line in out.stdout.splitlines():
        m = re.match(r"\s*(\S+)\s+=>\s+(\S+)", line)
        if m:
            if m.group(2) == "not":
                raise SystemExit(f"check_runtime_libs: {binary}: {m.group(1)} not found on this machine")
            libs[m.group(1)] = m.group(2)
    return libs


def file_owners():
    """path -> package, from dpkg's file lists (one pass; `dpkg -S` per file is slow)."""
    owners = {}
    info = "/var/lib/dpkg/info"
    for name in os.listdir(info):
        if not name.endswith(".list"):
            continue
        package = name[:-5].split(":")[0]
        with open(os.path.join(info, name), errors="replace") as f:
            for line in f:
                owners.setdefault(line.rstrip("\n"), package)
    return owners


def package_of(path, owners):
    real = os.path.realpath(path)
    candidates = [path, real]
    for p in list(candidates):  # usrmerge: /lib and /usr/lib are the same directory
        candidates.append(p[4:] if p.startswith("/usr/") else "/usr" + p)
    for c in candidates:
        if c in owners:
            return owners[c]
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dockerfile", required=True)
    ap.add_argument("binaries", nargs="+")
    args = ap.parse_args()

    listed = runtime_packages(args.dockerfile)
    if not listed:
        print(f"check_runtime_libs: no apt-get install in the last stage of {args.dockerfile}", file=sys.stderr)
        return 2
    info, provides = dpkg_fields()
    unknown = sorted(p for p in listed if p not in info)
    base = {p for p, (essential, priority, _) in info.items() if essential or priority == "required"}
    provided = closure(listed | base, info, provides)

    owners = file_owners()
    missing = []
    for binary in args.binaries:
        for soname, path in sorted(libraries(binary).items()):
            pkg = package_of(path, owners)
            if pkg is None:
                missing.append(f"{os.path.basename(binary)}: {soname} ({path}) belongs to no Debian package")
            elif pkg not in provided:
                missing.append(f"{os.path.basename(binary)}: {soname} comes from package {pkg}, "
                               f"which the runtime stage does not install")
    for p in unknown:
        print(f"check_runtime_libs: note: {p} is listed but not installed here; its dependencies are not checked")
    if missing:
        print(f"check_runtime_libs: {len(missing)} shared libraries are missing from the runtime stage of {args.dockerfile}:")
        for m in missing:
            print("  " + m)
        return 1
    print(f"check_runtime_libs: OK: the runtime stage ({len(listed)} packages listed) provides every library of "
          f"{len(args.binaries)} binaries")
    return 0


if __name__ == "__main__":
    sys.exit(main())
