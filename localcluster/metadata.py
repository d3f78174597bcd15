"""``python -m localcluster.metadata ADDRESS PORT``: the cloud-metadata stand-in.

Clouds answer instance metadata (and credentials) at 169.254.169.254; a pod that reaches it
can read what the node may do. Here nothing real answers that address, so a stand-in
serves it on the host's loopback interface: the NetworkPolicy tests prove that pods can NOT
reach it (and that they could without the policy enforcer), never by a missing route.
"""

from __future__ import annotations

import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BODY = b"moonhub metadata stand-in: a pod that reads this could read cloud credentials\n"


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write(f"{self.client_address[0]} {format % args}\n")


def main() -> None:
    address, port = sys.argv[1], int(sys.argv[2])
    ThreadingHTTPServer((address, port), Handler).serve_forever()


if __name__ == "__main__":
    main()
