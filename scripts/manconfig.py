"""Write kubemeta.yaml(5) from the code: every key, its default and its help
line (kubemeta/confighelp.py), in the groups of the Config class.

    python3 scripts/manconfig.py > debian/kubemeta.yaml.5

tests/test_docs.py checks that the committed page is what this writes.
"""

from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kubemeta import __version__, config
from kubemeta.confighelp import HELP

HEAD = """.TH KUBEMETA.YAML 5 2026-12-04 "kubemeta {version}" "File Formats"
.SH NAME
kubemeta.yaml \\- configuration of kubemeta, Kubernetes metadata for rsyslog
.SH SYNOPSIS
.I /etc/kubemeta/kubemeta.yaml
.SH DESCRIPTION
One YAML mapping of settings; every key is optional, and each has the default
shown below.
Every problem is reported with the file and line of its key: an unknown key
(with the likeliest meant one), a value of the wrong type or range, a key given
twice.
The helpers and
.B kubemeta serve
go on with the valid values of a broken file (or the last file that loaded
cleanly) and say so;
.B kubemeta check
refuses it.
Each key can also be given as a flag:
.B \\-\\-kubernetes\\-url
.I URL
for
.BR kubernetes_url .
.SH SETTINGS
.ad l
"""

TAIL = """.SH EXAMPLES
A node whose helpers watch its pods, with a service account's token:
.PP
.nf
.RS
kubernetes_url: https://10.0.0.1:6443
token_file: /etc/kubemeta/token
ca_file: /etc/kubemeta/ca.crt
node_name: node-17.example.net      # spec.nodeName of this node's pods
prometheus_file: /var/lib/prometheus/node-exporter/kubemeta.prom
.RE
.fi
.PP
CRI logs, two labels' annotations kept, table mode's daemon with a larger
table:
.PP
.nf
.RS
kubernetes_url: https://api.example.net:6443
token_file: /etc/kubemeta/token
ca_file: /etc/kubemeta/ca.crt
node_name: node-17.example.net
annotation_match: ["^prometheus\\\\.io/"]
table_max_bytes: 67108864
.RE
.fi
.PP
Check a configuration before rsyslog uses it:
.PP
.nf
.RS
kubemeta check \\-\\-config /etc/kubemeta/kubemeta.yaml
.RE
.fi
.SH FILES
.TP
.I /usr/share/doc/kubemeta/examples/kubemeta.yaml
A commented configuration.
.SH SEE ALSO
.BR kubemeta (1),
.BR rsyslogd (8)
"""


def groups() -> list[tuple[str, list[str]]]:
    """The Config class's "# -- name --" comments, and the keys under each."""
    out: list[tuple[str, list[str]]] = []
    for line in inspect.getsource(config.Config).splitlines():
        heading = re.match(r"\s+# -- (.+) --", line)
        key = re.match(r"\s+([a-z_]+): ", line)
        if heading:
            out.append((heading.group(1), []))
        elif key and out:
            out[-1][1].append(key.group(1))
    return out


def roff(text: str) -> str:
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + text if text.startswith((".", "'")) else text


def shown(value: object) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return "[" + ", ".join(repr(v) for v in value) + "]"
    return str(value)


def page() -> str:
    defaults = config.defaults()
    out = [HEAD.format(version=__version__)]
    for title, keys in groups():
        out.append(f".SS {roff(title[0].upper() + title[1:])}\n")
        for key in keys:
            default = shown(defaults[key])
            if len(default) > 60:  # the file-name rules: too long for a line
                default = "see kubemeta check --print-config"
            out.append(f".TP\n.B {roff(key)}\n{roff(HELP[key])}.\n"
                       f"Default: {roff(default)}.\n")
    out.append(TAIL)
    return "".join(out)


if __name__ == "__main__":
    sys.stdout.write(page())
