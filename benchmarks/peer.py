"""``python -m benchmarks.peer [setup|check]``: make or check ``.venv-peer`` (OpenCV 4.x contrib for the peer)."""

from __future__ import annotations

import sys

from .common import PEER_VENV, peer_env


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    create = not argv or argv[0] == "setup"
    env = peer_env(create=create)
    if env.ok:
        print(f"peer environment ready: {env.python} (OpenCV {env.opencv})")
        return 0
    print(f"peer environment unusable: {env.problem}", file=sys.stderr)
    print(f"(the benchmarks run without the peer's rows; fix it and rerun, or delete {PEER_VENV})", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
