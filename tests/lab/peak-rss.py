#!/usr/bin/env python3
"""Peak RSS of a command and of every process it leaves behind.

usage: peak-rss.py COMMAND [ARG...]

Runs COMMAND (output to /dev/null) under a child subreaper, so that
descendants orphaned by it are reaped here rather than by init, and
prints ru_maxrss in KB from wait4(2): "parent" for COMMAND (which
includes every descendant it reaped itself), "child" for the largest
orphan, "max" for the larger of the two. /usr/bin/time reports only the
first: scwd's parent exits without waiting for its fetcher. Exits 1 if
COMMAND failed. For tests/lab/bench.sh.
"""

import ctypes
import os
import sys

PR_SET_CHILD_SUBREAPER = 36


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__.split("\n\n")[1])
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        sys.exit("peak-rss.py: prctl: " + os.strerror(ctypes.get_errno()))
    # The process that execs COMMAND must not be a copy of this one: exec
    # records the old image's peak RSS (Python's, some 14 MB) as the
    # process's own. So sh starts COMMAND in the background, says its pid
    # and exits; COMMAND, a fork of small sh, is then reaped here.
    null = os.open(os.devnull, os.O_WRONLY)
    r, w = os.pipe()
    files = [(os.POSIX_SPAWN_DUP2, w, 1), (os.POSIX_SPAWN_DUP2, null, 2)]
    script = '"$@" >/dev/null 2>&1 & echo $!'
    sh = os.posix_spawn("/bin/sh", ["sh", "-c", script, "sh"] + sys.argv[1:],
                        os.environ, file_actions=files)
    os.close(w)
    pid = int(os.read(r, 64).decode() or "0")
    parent = child = 0
    status = 0
    while True:
        try:
            p, st, ru = os.wait4(-1, 0)
        except ChildProcessError:
            break
        if p == pid:
            parent, status = ru.ru_maxrss, st
        elif p != sh:
            child = max(child, ru.ru_maxrss)
    print("parent", parent)
    print("child", child)
    print("max", max(parent, child))
    sys.exit(0 if os.waitstatus_to_exitcode(status) == 0 else 1)


main()
