"""`kernelwatch docker build|run`: the CPU and CUDA images (kernelwatch.containers)."""

from __future__ import annotations

import argparse
from pathlib import Path

from kernelwatch.engine.gitrepo import find_repo_root


def add_parser(sub: argparse._SubParsersAction) -> None:
    dk = sub.add_parser("docker", help="build and run the CPU/CUDA images (Docker SDK)")
    dsub = dk.add_subparsers(dest="docker_command", required=True)
    b = dsub.add_parser(
        "build", help="build docker/Dockerfile for cpu or cuda",
        description="Build the kernelwatch image with the classic builder. Works without a "
        "registry (--base-image from docker/bootstrap-base), behind a TLS-intercepting proxy "
        "(--ca-bundle) and offline for torch (--wheelhouse with the wheels pip should use).",
    )
    b.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    b.add_argument("--tag", help="image tag (default kernelwatch:cpu / kernelwatch:cuda)")
    b.add_argument("--base-image", help="FROM image (default python:3.11-slim-bookworm)")
    b.add_argument("--torch-version", help="torch in the image (cpu: 2.13.0, cuda: 2.14.1)")
    b.add_argument("--torch-index-url",
                   help="extra index for torch (cpu default: PyTorch's CPU index; '' for none)")
    b.add_argument("--wheelhouse", help="folder of wheels pip tries first")
    b.add_argument("--ca-bundle", action="append",
                   help="extra CA certificates (PEM) to trust (repeatable)")
    b.add_argument("--network", help="build network, e.g. host where only the host reaches PyPI")
    b.add_argument("--with-te", action="store_true",
                   help="also build TransformerEngine (cuda only; needs --base-image with nvcc, "
                   "cuDNN and Python 3.11; tens of minutes): llama_layer's te backend")
    b.set_defaults(handler=build)
    dr = dsub.add_parser(
        "run", help="run kernelwatch inside the image with this repository mounted",
        description="Run `kernelwatch ARGS` (default: run --quick) in the image. The repository "
        "is mounted at /repo and written as your user; results go to results/docker-<tag>/.",
    )
    dr.add_argument("--tag", default="kernelwatch:cpu", help="image (default kernelwatch:cpu)")
    dr.add_argument("--gpus", action="store_true", help="request all GPUs (--gpus all)")
    dr.add_argument("--network", help="container network, e.g. host")
    dr.add_argument("--read-only-repo", action="store_true",
                    help="mount the repository read-only and run in a throwaway clone of its "
                    "HEAD inside the container: for code this repository does not vouch for "
                    "(a --target library); only the --results folders come back")
    dr.add_argument("--results", action="append", metavar="DIR",
                    help="with --read-only-repo: a results folder of the repository to mount "
                    "writable, e.g. results-llmcompressor (repeatable)")
    dr.add_argument("--env-volume", metavar="NAME",
                    help="the Docker volume for asv's environments (default: one per image "
                    "tag, and another for --read-only-repo runs)")
    dr.add_argument("kernelwatch_args", nargs=argparse.REMAINDER,
                    help="after --: the kernelwatch command to run inside")
    dr.set_defaults(handler=run)


def build(args: argparse.Namespace) -> int:
    from kernelwatch import containers

    tag = containers.build(
        find_repo_root(), device=args.device, tag=args.tag, base_image=args.base_image,
        torch_version=args.torch_version, torch_index_url=args.torch_index_url,
        wheelhouse=Path(args.wheelhouse).resolve() if args.wheelhouse else None,
        ca_bundles=[Path(p) for p in args.ca_bundle or ()], network=args.network,
        with_te=args.with_te,
    )
    print(f"built {tag}; run the suite in it: kernelwatch docker run --tag {tag} -- run --quick")
    return 0


def run(args: argparse.Namespace) -> int:
    from kernelwatch import containers

    rest = args.kernelwatch_args
    if rest and rest[0] == "--":
        rest = rest[1:]
    return containers.run(find_repo_root(), tag=args.tag, gpus=args.gpus,
                          network=args.network, args=rest or ["run", "--quick"],
                          read_only_repo=args.read_only_repo, results=args.results or [],
                          env_volume=args.env_volume)
