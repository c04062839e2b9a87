"""The container images and the GitHub workflow, checked by reading them (no Docker engine and no
GitHub here): the Dockerfiles are multi-stage (Debian bookworm build, bookworm-slim runtime),
build one target each, run as 65532, and install at run time exactly the packages that hold the
shared libraries the binary links — derived again here with ldd and dpkg -S from the binaries
`make test` built, so a new dependency fails this test until the Dockerfile lists it. The
workflow has the build/test, chart and kind end-to-end jobs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helmlib import REPO

sys.path.insert(0, str(REPO / "tests" / "operator"))
sys.path.insert(0, str(REPO / "tests" / "integration"))
from test_operator_apiserver import operator_binary  # noqa: E402
import relaytest  # noqa: E402

# Not libraries: what the runtime needs besides (the relay verifies next hops' certificates).
EXTRA = {"relay": {"ca-certificates"}, "operator": set()}


def binary(name: str) -> Path:
    return relaytest.relay_binary() if name == "relay" else operator_binary()


def dockerfile(name: str) -> str:
    return (REPO / name / "Dockerfile").read_text()


def stages(text: str) -> list[str]:
    return re.split(r"^FROM ", text, flags=re.M)[1:]


def runtime_packages(text: str) -> set[str]:
    m = re.search(r'^ARG RUNTIME_PACKAGES="([^"]+)"', stages(text)[-1], re.M)
    assert m, "the runtime stage declares ARG RUNTIME_PACKAGES"
    return set(m.group(1).split())


def linked_packages(path: Path) -> set[str]:
    """The Debian packages that own the shared libraries `path` loads (ldd + dpkg -S)."""
    out = subprocess.run(["ldd", str(path)], capture_output=True, text=True, timeout=30, check=True).stdout
    assert "not found" not in out, out
    libs = []
    for line in out.splitlines():
        m = re.search(r"=>\s+(/\S+)", line) or re.match(r"\s*(/\S+)\s+\(", line)
        if m:  # not linux-vdso
            lib = m.group(1)
            libs.append((lib, os.path.realpath(lib), lib.replace("/lib/", "/usr/lib/", 1)))
    candidates = sorted({c for triple in libs for c in triple})
    # One dpkg -S for all (it exits 1 when some path has no owner, and still prints the others).
    proc = subprocess.run(["dpkg", "-S", *candidates], capture_output=True, text=True, timeout=60)
    owner = {}
    for line in proc.stdout.splitlines():
        pkgs, _, file = line.partition(": ")
        owner[file.strip()] = pkgs.split(",")[0].split(":")[0].strip()
    packages = set()
    for triple in libs:
        found = [owner[c] for c in triple if c in owner]
        assert found, f"no package owns {triple[0]}"
        packages.add(found[0])
    return packages


@pytest.mark.parametrize("name", ["operator", "relay"])
def test_dockerfile_shape(name):
    text = dockerfile(name)
    build, runtime = stages(text)
    assert build.startswith("debian:bookworm AS build")
    assert runtime.startswith("debian:bookworm-slim\n")
    target = f"kuberelay-{name}"
    assert f"--target {target}" in build and "-G Ninja" in build
    assert f"COPY --from=build /build/{name}/{target} /usr/local/bin/{target}" in runtime
    assert re.search(r"^USER 65532:65532$", runtime, re.M)
    assert runtime.rstrip().endswith(f'ENTRYPOINT ["/usr/local/bin/{target}"]')
    # Everything scripts/install-deps.sh installs to build the C++ (its -dev packages and the
    # build tools) is in the build stage.
    deps = re.search(r"APT_PACKAGES=\((.*?)\)", (REPO / "scripts" / "install-deps.sh").read_text(), re.S).group(1)
    needed = {p for p in deps.split() if p.endswith("-dev") and "clang" not in p}
    needed |= {"cmake", "ninja-build", "pkg-config", "protobuf-compiler", "protobuf-compiler-grpc"}
    missing = {p for p in needed if not re.search(rf"(?<![\w+.-]){re.escape(p)}(?![\w+.-])", build)}
    assert not missing, f"{name}/Dockerfile's build stage lacks {missing}"
    ignore = (REPO / name / "Dockerfile.dockerignore").read_text().split()
    assert ignore[ignore.index("*") if "*" in ignore else 0] == "*"
    for src in re.findall(r"^COPY (?!--from)(\S+)", build, re.M):
        assert f"!{src}" in ignore or f"!{src.rstrip('/')}/" in ignore, f"{src} is not in the build context"


@pytest.mark.parametrize("name", ["operator", "relay"])
def test_runtime_packages_are_the_linked_libraries(name):
    if not shutil.which("dpkg"):
        pytest.fail("dpkg is needed to map the shared libraries to Debian packages (Debian 12)")
    path = binary(name)
    assert path.exists(), f"{path} is not built"
    derived = linked_packages(path)
    declared = runtime_packages(dockerfile(name))
    assert derived - declared == set(), f"{name}/Dockerfile does not install {derived - declared} ({path} links them)"
    assert declared - derived - EXTRA[name] == set(), \
        f"{name}/Dockerfile installs {declared - derived - EXTRA[name]}, which {path} does not link"
    assert EXTRA[name] <= declared


def test_workflow_jobs():
    wf = yaml.safe_load((REPO / ".github" / "workflows" / "ci.yml").read_text())
    jobs = wf["jobs"]
    assert set(jobs) >= {"build-and-test", "chart", "e2e"}
    text = (REPO / ".github" / "workflows" / "ci.yml").read_text()
    for needle in ("make test", "helm lint", "helm template", "kind create cluster", "kind load docker-image",
                   "-f operator/Dockerfile", "-f relay/Dockerfile", "helm install", "swaks"):
        assert needle in text, f"ci.yml lacks {needle!r}"
    assert jobs["e2e"]["needs"]
    for job in jobs.values():
        assert job.get("timeout-minutes"), "every job is time-bounded"
