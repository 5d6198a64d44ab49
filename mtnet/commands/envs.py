"""mtnet envs list | install NAME [NAME ...]: the pinned side environments (Triton serving, tflite-support's
metadata reader) that cannot share mtnet's own pins. Installing is the only step that downloads."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..sideenv import SIDE_ENVS

    sub = p.add_subparsers(dest="action", required=True)
    sub.add_parser("list", help="each side environment, its pins and whether it is installed")
    inst = sub.add_parser("install", help="build side environments (needs the package index once)")
    inst.add_argument("names", nargs="+", choices=sorted(SIDE_ENVS), help="environments to build")


def run(args: argparse.Namespace) -> int:
    from ..sideenv import SIDE_ENVS

    if args.action == "list":
        for env in SIDE_ENVS.values():
            state = "installed" if env.installed() else "not installed"
            print(f"{env.name:16s} {state:14s} {env.root}\n{'':16s} {env.purpose}: {' '.join(env.pins)}")
        return 0
    for name in args.names:
        env = SIDE_ENVS[name]
        print(f"installing '{name}' ({' '.join(env.pins)}) at {env.root} ...", flush=True)
        env.install()
    print("done")
    return 0
