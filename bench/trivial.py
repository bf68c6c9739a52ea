"""A helper that does no work: the same reply to every line.

With no argument it answers ``{}`` (rsyslog keeps the record as it is): the
protocol's ceiling, what rsyslog's round trip through a helper costs. With a
file, it answers that file's one line to every record: what rsyslog's own side
of a full reply (parsing it, merging it into the record) costs on top.
"""

import os
import sys


def main() -> None:
    reply = b"{}\n"
    if len(sys.argv) > 1:
        with open(sys.argv[1], "rb") as f:
            reply = f.read().rstrip(b"\n") + b"\n"
    while True:
        data = os.read(0, 1 << 16)
        if not data:
            return
        n = data.count(b"\n")
        if n:
            os.write(1, reply * n)


if __name__ == "__main__":
    main()
