"""`kernelwatch docker build|run`, through the Docker SDK for Python (`docker`).

The image (docker/Dockerfile) holds asv, kernelwatch and one torch. At run time the repository
is mounted at /repo and asv runs inside over commits and torch versions, as the host user, so
results/ and html/ stay owned by that user. Each image gets its own asv machine name
(`docker-<tag>`), so results of different images never overwrite each other, and its own
volume for asv's virtualenvs, which the host could not run anyway.

`read_only_repo` is for code this repository does not vouch for (a target library at any
commit): /repo is mounted read-only, so nothing in the container can plant a git hook or
config in the checkout's .git for a later job; kernelwatch works in a throwaway clone of HEAD
inside the container; only the named results folders are mounted writable, and what comes
back through them is plain files (docs/security.md).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import uuid
from collections import deque
from collections.abc import Iterator
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


# Where a read-only run works: a clone of /repo's HEAD sharing its objects (read through the
# read-only mount), in the container's own filesystem, gone with the container. kernelwatch
# writes beside asv.conf.json (derived configs, the run lock, logs, a target's mirror and
# kernelwatch's exported source); here those writes land in the clone. The results folders
# are mounted under /results and linked into the clone: a mount point inside the clone would
# be created by Docker as root before the clone exists, and the host user could not clone
# into it.
READ_ONLY_START = """set -eu
work=/tmp/kernelwatch-repo
git clone -q --shared --no-checkout /repo "$work"
git -C "$work" checkout -q --detach "$(git -C /repo rev-parse HEAD)"
for d in /results/*; do if [ -d "$d" ]; then ln -s "$d" "$work/${d##*/}"; fi; done
cd "$work"
exec kernelwatch "$@"
"""
RESULTS_NAME = re.compile(r"results(-[A-Za-z0-9_.-]+)?")
VOLUME_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def env_volume_for(tag: str, *, read_only_repo: bool = False) -> str:
    """The default asv environment volume of an image: one per tag, and a separate one for
    read-only runs, so code run there never shares a virtualenv with the other runs."""
    name = "kernelwatch-asv-env-" + machine_for(tag).removeprefix("docker-")
    return name + "-read-only" if read_only_repo else name


def _container_options(repo: Path, *, tag: str, gpus: bool, network: str | None,
                       read_only_repo: bool = False,
                       results: list[str] | tuple[str, ...] = (),
                       env_volume: str | None = None) -> dict:
    """The docker SDK's `containers.run` keyword arguments for a kernelwatch run, less the
    command and `detach`: mounts, user, environment, network, GPUs. `results` names folders
    directly in `repo` (results, results-DIST), mounted writable in a `read_only_repo` run."""
    import docker

    volume = env_volume or env_volume_for(tag, read_only_repo=read_only_repo)
    if not VOLUME_NAME.fullmatch(volume):
        raise KernelwatchError(f"--env-volume {volume!r} is not a Docker volume name "
                               "(letters, digits, '_', '.', '-')")
    if results and not read_only_repo:
        raise KernelwatchError("--results names the writable folders of a --read-only-repo "
                               "run; without it the whole repository is writable already")
    volumes = {str(repo): {"bind": "/repo", "mode": "ro" if read_only_repo else "rw"},
               volume: {"bind": "/asv-env", "mode": "rw"}}
    for name in results:
        if not RESULTS_NAME.fullmatch(name):
            raise KernelwatchError(f"--results {name!r}: only results or results-DIST, a "
                                   "folder directly in the repository, can be mounted writable")
        host = repo / name
        if host.is_symlink() or (host.exists() and not host.is_dir()):
            raise KernelwatchError(f"{host} is not a folder; move it away and run again")
        host.mkdir(exist_ok=True)  # else Docker creates it, owned by root
        volumes[str(host)] = {"bind": f"/results/{name}", "mode": "rw"}
    kwargs = {
        "volumes": volumes,
        "working_dir": "/repo",
        "user": f"{os.getuid()}:{os.getgid()}",
        "environment": {"KERNELWATCH_MACHINE": machine_for(tag), "KERNELWATCH_ENV_DIR":
                        "/asv-env", "HOME": "/tmp/kernelwatch-home"},
        "network_mode": network,
    }
    if gpus:
        kwargs["device_requests"] = [docker.types.DeviceRequest(count=-1,
                                                                capabilities=[["gpu"]])]
    return kwargs


def run(repo: Path, *, tag: str, gpus: bool, network: str | None, args: list[str],
        read_only_repo: bool = False, results: list[str] | tuple[str, ...] = (),
        env_volume: str | None = None) -> int:
    """Run `kernelwatch <args>` in the image with the repository mounted; stream its output.
    With `read_only_repo` the repository is mounted read-only and only the `results` folders
    are writable (module docstring)."""
    import docker

    c = client()
    try:
        c.images.get(tag)
    except docker.errors.ImageNotFound as exc:
        raise KernelwatchError(f"no image {tag!r}; build it first: kernelwatch docker build "
                               "--device cpu (or cuda)") from exc
    machine = machine_for(tag)
    kwargs = _container_options(repo, tag=tag, gpus=gpus, network=network,
                                read_only_repo=read_only_repo, results=results,
                                env_volume=env_volume)
    volume = next(k for k, v in kwargs["volumes"].items() if v["bind"] == "/asv-env")
    command = ["kernelwatch", *args]
    if read_only_repo:
        command = ["sh", "-c", READ_ONLY_START, "kernelwatch", *args]
    _prepare_volume(c, volume, tag)
    where = ", ".join(results) if read_only_repo else f"results/{machine}/"
    print(f"docker run {tag} kernelwatch {' '.join(args)}  (results: {where}"
          + ("; the repository read-only" if read_only_repo else "") + ")", flush=True)
    # A CI job that is cancelled gets SIGTERM, not Ctrl-C: stop the container on both.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    # Named, so that a signal while it is being created still finds it to remove.
    container_name, container = f"kernelwatch-{uuid.uuid4().hex[:12]}", None
    try:
        container = c.containers.run(tag, command=command, detach=True, name=container_name,
                                     **kwargs)
        for line in container.logs(stream=True, follow=True):
            print(line.decode(errors="replace"), end="", flush=True)
        status = container.wait()["StatusCode"]
    except KeyboardInterrupt:
        print(f"\nkernelwatch: interrupted; container stopped. Result files already written "
              f"under {where} are kept", flush=True)
        status = 130
    finally:
        # Whole, whatever signal comes next: a second SIGTERM or Ctrl-C here would leave the
        # container running, and a link the run planted in the results folders in place.
        with _signals_held(restore_sigterm=previous):
            try:
                _remove_container(c, container, container_name)
            finally:
                strays = (remove_non_files([repo / name for name in results])
                          if read_only_repo else [])
    if strays:
        print("kernelwatch: removed what the run left in its results folders that is not "
              "a plain file or folder (a link there would make a later upload or copy read "
              "the host's files): " + ", ".join(strays), file=sys.stderr, flush=True)
        return status or 1
    return status


def remove_non_files(roots: list[Path]) -> list[str]:
    """Delete every entry under `roots` that is neither a regular file nor a folder (links,
    FIFOs, sockets, devices), without following any link; returns their paths."""
    removed = []
    for root in roots:
        for here, dirs, files in os.walk(root, followlinks=False):
            for name in [*dirs, *files]:
                path = Path(here) / name
                mode = path.lstat().st_mode
                if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                    path.unlink()
                    removed.append(str(path))
    return removed


def _remove_container(c, container, name: str) -> None:
    """Remove the run's container (killing it), also one whose creation a signal cut."""
    import docker

    if container is None:
        try:
            container = c.containers.get(name)
        except docker.errors.NotFound:
            return
    container.remove(force=True)


def _interrupt(signum, frame):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once; the clean-up follows
    raise KeyboardInterrupt


@contextlib.contextmanager
def _signals_held(restore_sigterm) -> Iterator[None]:
    """SIGINT and SIGTERM ignored inside; then SIGINT as it was and SIGTERM's handler
    `restore_sigterm`."""
    sigint = signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, sigint)
        signal.signal(signal.SIGTERM, restore_sigterm)


def _prepare_volume(c, volume: str, tag: str) -> None:
    """A new named volume is owned by root; hand it to the host user (the container's user)
    alone, rather than to every user. Creating a volume that exists returns it."""
    c.volumes.create(volume)
    c.containers.run(tag, ["sh", "-c", f"chown {os.getuid()}:{os.getgid()} /asv-env && "
                           "chmod 0755 /asv-env"], user="0:0", remove=True,
                     volumes={volume: {"bind": "/asv-env", "mode": "rw"}})
