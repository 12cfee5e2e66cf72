"""`kernelwatch docker build|run`, through the Docker SDK for Python (`docker`).

The image (docker/Dockerfile) holds asv, kernelwatch and one torch. At run time the repository
is mounted at /repo and asv runs inside over commits and torch versions, as the host user, so
results/ and html/ stay owned by that user. Each image gets its own asv machine name
(`docker-<tag>`), so results of different images never overwrite each other, and its own
volume for asv's virtualenvs, which the host could not run anyway.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections import deque
from pathlib import Path

from kernelwatch.errors import KernelwatchError, unknown_name

DEVICES = {
    # device -> (default tag, default torch, default torch index)
    "cpu": ("kernelwatch:cpu", "2.13.0", "https://download.pytorch.org/whl/cpu"),
    "cuda": ("kernelwatch:cuda", "2.14.1", ""),
}
NO_ENGINE = (
    "no Docker engine is reachable ({detail}). Start one: `sudo systemctl start docker`, or "
    "`sudo dockerd &` where there is no systemd (scripts/ensure-docker.sh does this on Debian), "
    "or point DOCKER_HOST at a running engine"
)


def client():
    try:
        import docker
    except ImportError as exc:
        raise KernelwatchError("the Docker SDK is not installed: pip install "
                               "'kernelwatch[docker]'") from exc
    try:
        c = docker.from_env()
        c.ping()
    except docker.errors.DockerException as exc:
        raise KernelwatchError(NO_ENGINE.format(detail=exc)) from exc
    return c


def machine_for(tag: str) -> str:
    """The asv machine name of an image: results land in results/docker-<tag>/."""
    return "docker-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", tag).strip("-")


def _git_files(repo: Path) -> list[str]:
    out = subprocess.run(["git", "ls-files", "pyproject.toml", "README.md", "src"], cwd=repo,
                         capture_output=True, text=True, check=True)
    return out.stdout.split()


def assemble_context(repo: Path, dest: Path, wheelhouse: Path | None,
                     ca_bundles: list[Path]) -> None:
    """Build context: the Dockerfile, kernelwatch's tracked sources, wheels and CA files."""
    shutil.copy(repo / "docker" / "Dockerfile", dest / "Dockerfile")
    for rel in _git_files(repo):
        target = dest / "src" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(repo / rel, target)
    (dest / "wheelhouse").mkdir()
    if wheelhouse:
        if not wheelhouse.is_dir():
            raise KernelwatchError(f"wheelhouse {wheelhouse} is not a folder")
        for whl in wheelhouse.glob("*.whl"):
            target = dest / "wheelhouse" / whl.name
            if whl.stat().st_dev == dest.stat().st_dev:
                os.link(whl, target)  # a multi-GB CUDA wheelhouse is not copied
            else:
                shutil.copy(whl, target)
    (dest / "ca").mkdir()
    for i, bundle in enumerate(ca_bundles):
        if not bundle.is_file():
            raise KernelwatchError(f"CA bundle {bundle} does not exist")
        shutil.copy(bundle, dest / "ca" / f"extra-{i}.crt")


def build(repo: Path, *, device: str, tag: str | None, base_image: str | None,
          torch_version: str | None, torch_index_url: str | None, wheelhouse: Path | None,
          ca_bundles: list[Path], network: str | None, with_te: bool = False) -> str:
    """Build the image, streaming docker's output. Returns the tag. `with_te`: also compile
    TransformerEngine (CUDA only; the base image must carry nvcc and cuDNN)."""
    if device not in DEVICES:
        raise unknown_name("device", device, DEVICES)
    if with_te and device != "cuda":
        raise KernelwatchError("--with-te needs --device cuda: TransformerEngine runs on NVIDIA "
                               "GPUs only")
    if with_te and not base_image:
        raise KernelwatchError(
            "--with-te needs --base-image: TransformerEngine's PyTorch extension compiles from "
            "source with nvcc and cuDNN, which the default python image lacks; name a CUDA "
            "devel image with cuDNN and Python 3.11 (docs/workloads.md)")
    default_tag, default_torch, default_index = DEVICES[device]
    tag = tag or default_tag
    args = {"DEVICE": device, "TORCH_VERSION": torch_version or default_torch,
            "TORCH_INDEX_URL": default_index if torch_index_url is None else torch_index_url}
    if base_image:
        args["BASE_IMAGE"] = base_image
    if with_te:
        args["WITH_TE"] = "1"
    c = client()
    import docker  # importable: client() checked

    tail: deque[str] = deque(maxlen=25)
    with tempfile.TemporaryDirectory(prefix="kernelwatch-build-", dir=_tmp_near(wheelhouse)) as d:
        try:
            assemble_context(repo, Path(d), wheelhouse, ca_bundles)
        except OSError as exc:
            raise KernelwatchError(f"cannot assemble the build context in {d}: {exc}; free "
                                   "space there or set TMPDIR to a roomier disk") from exc
        print(f"docker build -t {tag} " + " ".join(f"--build-arg {k}={v}" for k, v in
                                                   args.items()), flush=True)
        try:
            stream = c.api.build(path=d, tag=tag, buildargs=args, rm=True, forcerm=True,
                                 decode=True, network_mode=network)
            for chunk in stream:
                text = chunk.get("stream") or chunk.get("status") or ""
                if text.strip():
                    print(text, end="" if text.endswith("\n") else "\n", flush=True)
                    tail.extend(text.rstrip("\n").splitlines())
                if "error" in chunk:
                    raise _build_failed(tag, chunk["error"].strip(), tail)
        except docker.errors.APIError as exc:
            # The engine refused the build itself (no space for the context, a bad base
            # image name, ...): its explanation, not a traceback.
            raise _build_failed(tag, str(exc.explanation or exc), tail) from exc
    return tag


def _build_failed(tag: str, reason: str, tail: deque[str]) -> KernelwatchError:
    message = f"docker build of {tag} failed: {reason}"
    if "no space left on device" in reason:
        message += ("\nThe Docker engine's disk is full. Free space where it keeps its data "
                    "(`docker info -f '{{.DockerRootDir}}'`): `docker image prune` removes "
                    "dangling images, `docker system df` shows what uses the space.")
    if tail:
        message += "\n--- last lines of the failing step ---\n" + "\n".join(tail)
    return KernelwatchError(message)


def _tmp_near(wheelhouse: Path | None) -> str | None:
    # Keep the context on the wheelhouse's filesystem so wheels are hard-linked, not copied.
    return str(wheelhouse.parent) if wheelhouse and os.access(wheelhouse.parent, os.W_OK) \
        else None


def run(repo: Path, *, tag: str, gpus: bool, network: str | None, args: list[str]) -> int:
    """Run `kernelwatch <args>` in the image with the repository mounted; stream its output."""
    import docker

    c = client()
    try:
        c.images.get(tag)
    except docker.errors.ImageNotFound as exc:
        raise KernelwatchError(f"no image {tag!r}; build it first: kernelwatch docker build "
                               "--device cpu (or cuda)") from exc
    machine = machine_for(tag)
    volume = "kernelwatch-asv-env-" + machine.removeprefix("docker-")
    kwargs = {
        "command": ["kernelwatch", *args],
        "volumes": {str(repo): {"bind": "/repo", "mode": "rw"},
                    volume: {"bind": "/asv-env", "mode": "rw"}},
        "working_dir": "/repo",
        "user": f"{os.getuid()}:{os.getgid()}",
        "environment": {"KERNELWATCH_MACHINE": machine, "KERNELWATCH_ENV_DIR": "/asv-env",
                        "HOME": "/tmp/kernelwatch-home"},
        "network_mode": network,
        "detach": True,
    }
    if gpus:
        kwargs["device_requests"] = [docker.types.DeviceRequest(count=-1,
                                                                capabilities=[["gpu"]])]
    _prepare_volume(c, volume, tag)
    print(f"docker run {tag} kernelwatch {' '.join(args)}  (results: results/{machine}/)",
          flush=True)
    container = c.containers.run(tag, **kwargs)
    # A CI job that is cancelled gets SIGTERM, not Ctrl-C: stop the container on both.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        for line in container.logs(stream=True, follow=True):
            print(line.decode(errors="replace"), end="", flush=True)
        return container.wait()["StatusCode"]
    except KeyboardInterrupt:
        print(f"\nkernelwatch: interrupted; container stopped. Result files already written "
              f"under results/{machine}/ are kept", flush=True)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
        container.remove(force=True)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _prepare_volume(c, volume: str, tag: str) -> None:
    """A new named volume is owned by root; let the host user (the container's user) write.
    Creating a volume that exists returns it."""
    c.volumes.create(volume)
    c.containers.run(tag, ["sh", "-c", "chmod 0777 /asv-env"], user="0:0", remove=True,
                     volumes={volume: {"bind": "/asv-env", "mode": "rw"}})
