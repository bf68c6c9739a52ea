"""The reference loop: the least any Python helper must do per line.

Parse the fulljson line, find the file name, look up a reply built beforehand
for that file, write it, flush. No cache, no lookups, no error handling: what
kubemeta's own loop is measured against.

Usage: reference.py REPLIES.json  (an object: file name -> reply line)
"""

import json
import os
import sys

try:
    from orjson import loads
except ImportError:  # as kubemeta does
    from json import loads  # type: ignore[assignment]


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as f:
        replies = {k: v.encode() for k, v in json.load(f).items()}
    empty = b"{}\n"
    for line in sys.stdin.buffer:
        tree = loads(line).get("$!") or {}
        name = (tree.get("metadata") or {}).get("filename")
        os.write(1, replies.get(name, empty))


if __name__ == "__main__":
    main()
