"""``python -m cinepulse_devstack.cluster [--provider local|kind] up|down|status|import REF...``"""

from __future__ import annotations

import argparse
import sys

from cinepulse_devstack import cluster
from cinepulse_devstack.cluster import release
from cinepulse_devstack.procs import StackError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="cinepulse-cluster", description=cluster.__doc__)
    p.add_argument("--provider", choices=("local", "kind"), default="local",
                   help="this machine as the node (local) or a kind cluster (Docker)")  # fmt: skip
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("up", help="start the cluster with the chart's images (idempotent)")
    sub.add_parser("down", help="stop it and restore the host (kind: delete the cluster)")
    sub.add_parser("status", help="one line per part; exit 1 if any is down (local)")
    imp = sub.add_parser("import", help="put locally built images on the node")
    imp.add_argument("refs", nargs="+")
    args = p.parse_args(argv)

    def say(s: str) -> None:
        print(s, file=sys.stderr, flush=True)

    client = cluster.client(args.provider)
    try:
        if args.cmd == "up":
            say(release.cluster_up(client, say))
        elif args.cmd == "down":
            client.tear_down(say)
        elif args.cmd == "import":
            client.load_images(args.refs, say)
        elif args.provider != "local":
            print(client.kubectl("get", "nodes", "-o", "wide").stdout)
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
