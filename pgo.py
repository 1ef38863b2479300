"""Rebuild the proxy's compiled request path with GCC profile-guided optimisation.

Why: at a steady 1,000 requests/s a proxy finds its caches cold at every request, and what a
request then costs is set by how many cache lines of code it runs through (bench/bench_cold.py).
mypyc's C interleaves every line's error handling with the line; a profile tells GCC which
blocks run, and it lays those out together and the rest apart. Trained on the plain hop's
request path (`bench_proxy.micro`), the library brings back ~8 % fewer cache lines per request,
and a cold wake-up takes ~13 % less time (docs/proxy.md, "One core: fewer objects per
request, and a profile"). The training also runs the mTLS pair's (`bench_proxy.micro_pair`:
the outbound router, the TLS layer, the inbound dispatch), which the hop does not.
Functions the training does not run (the httptools paths, the L4 relays) are compiled as
without a profile (`-fprofile-partial-training`), never as cold.

`make install` runs this after the editable install has built proxy.native__mypyc from the C
that mypyc generated (build/proxy/__native_native.c). It builds an instrumented library in its
place, runs the training in a child process, builds the final library from the profile, and
checks that it loads. Any failure (no C compiler, no mypyc headers, a training that fails)
puts the plain library back and exits 0 with a warning: the optimisation is optional.

    python pgo.py           # after `pip install -e .`
"""

from __future__ import annotations

import importlib.machinery
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
SOURCE = ROOT / "build" / "proxy" / "__native_native.c"
LIBRARY = ROOT / "proxy" / f"native__mypyc{importlib.machinery.EXTENSION_SUFFIXES[0]}"
TRAINING = (
    "import asyncio, sys; sys.path.insert(0, 'bench'); import bench_proxy as b; "
    "from proxy import native; assert native.state() == 'compiled', native.state(); "
    "asyncio.run(b.micro(20000, 3)); asyncio.run(b.micro_pair(5000, 3))"
)


def _compile(work: Path, profile: list[str]) -> None:
    """Compile SOURCE into LIBRARY as setup.py's build does (mypyc's -O3), plus `profile`."""
    import mypyc

    runtime = Path(mypyc.__file__).parent / "lib-rt"
    config = sysconfig.get_config_vars()
    obj = work / "native.o"
    compile_ = [
        *str(config["CC"]).split(),
        *str(config["CFLAGS"]).split(),
        *str(config["CCSHARED"]).split(),
        f"-I{runtime}",
        f"-I{ROOT / 'build'}",
        f"-I{sysconfig.get_paths()['include']}",
        "-c",
        str(SOURCE),
        "-o",
        str(obj),
        "-O3",
        "-g1",
        "-w",
        *profile,
    ]
    subprocess.run(compile_, check=True, cwd=work)
    link = [*str(config["LDSHARED"]).split(), str(obj), "-o", str(LIBRARY), *profile]
    subprocess.run(link, check=True, cwd=work)


def _same_mypyc() -> str | None:
    """Why the C cannot be rebuilt here, None if it can: the generated C includes mypyc's
    runtime sources, which must be those of the mypyc that generated it (the build system's
    pinned `mypy==`), not some other version installed in this environment."""
    import tomllib
    from importlib.metadata import PackageNotFoundError, version

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    requires = project.get("build-system", {}).get("requires", [])
    pinned = next((r.split("==", 1)[1] for r in requires if r.startswith("mypy==")), None)
    try:
        here = version("mypy")
    except PackageNotFoundError:
        return "mypy is not installed here"
    if pinned != here:
        return f"mypy {here} here, the build's is {pinned}"
    return None


def _run(python: str, code: str) -> None:
    subprocess.run([python, "-c", code], check=True, cwd=ROOT, timeout=300)


def main() -> int:
    if not SOURCE.exists() or not LIBRARY.exists():
        print("pgo: no compiled request path to optimise; left as it is", file=sys.stderr)
        return 0
    mismatch = _same_mypyc()
    if mismatch is not None:
        print(f"pgo: skipped ({mismatch}); the plain build stays", file=sys.stderr)
        return 0
    with tempfile.TemporaryDirectory(prefix="smictl-pgo-") as tmp:
        work = Path(tmp)
        plain = work / LIBRARY.name
        shutil.copy2(LIBRARY, plain)
        try:
            generate = [f"-fprofile-generate={work / 'profile'}", "-fprofile-update=single"]
            _compile(work, generate)
            _run(sys.executable, TRAINING)
            use = [
                f"-fprofile-use={work / 'profile'}",
                "-fprofile-partial-training",
                "-Wno-missing-profile",
            ]
            _compile(work, use)
            _run(sys.executable, "from proxy import native; assert native.state() == 'compiled'")
        except (OSError, subprocess.SubprocessError, ImportError) as exc:
            shutil.copy2(plain, LIBRARY)
            print(f"pgo: skipped ({exc}); the plain build stays", file=sys.stderr)
            return 0
    print(f"pgo: {LIBRARY.relative_to(ROOT)} rebuilt with a profile of the hop and the pair")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
