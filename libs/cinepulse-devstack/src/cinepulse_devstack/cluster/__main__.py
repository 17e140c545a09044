"""``python -m cinepulse_devstack.cluster up|down|status|import REF...``"""

from __future__ import annotations

import argparse
import sys

from cinepulse_devstack import cluster
from cinepulse_devstack.cluster import images
from cinepulse_devstack.procs import StackError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="cinepulse-cluster", description=cluster.__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("up", help="start the cluster (idempotent)")
    sub.add_parser("down", help="stop it and restore the host")
    sub.add_parser("status", help="one line per part; exit 1 if any is down")
    imp = sub.add_parser("import", help="import podman images into the node")
    imp.add_argument("refs", nargs="+")
    args = p.parse_args(argv)

    def say(s: str) -> None:
        print(s, file=sys.stderr, flush=True)

    try:
        if args.cmd == "up":
            cluster.up(say=say)
        elif args.cmd == "down":
            cluster.down(say=say)
        elif args.cmd == "import":
            node = cluster.Node()
            images.import_images(node.layout, args.refs, node.ctr, say)
        else:
            rows = cluster.status()
            width = max(len(n) for n, _, _ in rows)
            for name, ok, detail in rows:
                print(f"{name:<{width}}  {'up  ' if ok else 'DOWN'}  {detail}")
            return 0 if all(ok for _, ok, _ in rows) else 1
    except StackError as exc:
        print(f"cluster {args.cmd}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
