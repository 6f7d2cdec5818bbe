"""One column per build: the builds a per-command benchmark compares and its Markdown table.

`--before-bin` adds a column for a binary of an earlier commit, before this build's.
"""

import os


def random_keys(keyspace):
    """redis-benchmark's -r: keys (and HSET's fields) drawn from `keyspace`; 0 keeps its one
    key and one field, as the issue's comparison runs."""
    if keyspace < 0:
        raise SystemExit(f"--keyspace must be 0 or more, not {keyspace}")
    return ["-r", str(keyspace)] if keyspace else []


def builds(before_bin):
    """[(label, binary)]: the earlier build if given, then SESSIONFED_BIN."""
    binary = os.environ.get("SESSIONFED_BIN", ".build-interop/release/sessionfed")
    return ([("before", before_bin)] if before_bin else []) + [("this build", binary)]


def print_table(title, columns, rows, digits):
    """`rows`: command -> one number per build, printed with `digits` decimals."""
    print(f"{title}\n")
    print("| command | " + " | ".join(name for name, _ in columns) + " |")
    print("| --- |" + " --- |" * len(columns))
    for command, values in rows.items():
        print(f"| {command.upper()} | " + " | ".join(f"{value:.{digits}f}" for value in values) + " |")
