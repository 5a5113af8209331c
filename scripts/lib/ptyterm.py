"""A program in a pseudo-terminal, driven as an operator types: what it
shows (escape sequences and carriage returns out), patterns awaited with a
deadline, keys sent, its exit status. Shared by pty_shell.py and
pty_paste.py; on a failure it shows the end of the screen (keys masked),
kills the program and exits 1.
"""

import os
import pty
import re
import select
import signal
import struct
import sys
import time

import fcntl
import termios

CSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def ok(what):
    print(f"ok   {what}")


class Term:
    def __init__(self, argv, home):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.environ.update(HOME=home, TERM="xterm")
            os.execv(argv[0], argv)
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 200, 0, 0))
        self.raw = b""
        self.seen = 0  # how much of the screen text the checks have consumed

    def text(self):
        return CSI.sub("", self.raw.decode("utf-8", "replace")).replace("\r", "")

    def pump(self, timeout):
        r, _, _ = select.select([self.fd], [], [], timeout)
        if not r:
            return
        try:
            data = os.read(self.fd, 65536)
        except OSError:
            data = b""
        if not data:
            raise EOFError
        # The line editor asks where the cursor is; a terminal answers.
        if b"\x1b[6n" in data:
            os.write(self.fd, b"\x1b[1;1R")
        self.raw += data

    def fail(self, what):
        screen = re.sub(r"(key|preshare) +\S+", r"\1 <masked>", self.text())
        sys.stderr.write("---- end of the screen ----\n" + screen[-4000:] + "\n----\n")
        print(f"FAIL {what}")
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        sys.exit(1)

    def expect(self, pattern, what, timeout=15.0):
        deadline = time.monotonic() + timeout
        while True:
            m = re.compile(pattern).search(self.text(), self.seen)
            if m:
                self.seen = m.end()
                return m
            left = deadline - time.monotonic()
            if left <= 0:
                self.fail(f"{what} (waited {timeout} s for {pattern!r})")
            try:
                self.pump(min(left, 0.2))
            except EOFError:
                self.fail(f"{what} (the shell ended, waiting for {pattern!r})")

    def send(self, keys):
        os.write(self.fd, keys.encode())

    def wait_exit(self, what):
        """Waits (10 s at most) for the program to end with status 0."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                self.pump(0.2)
            except EOFError:
                break
        _, status = os.waitpid(self.pid, 0)
        if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
            self.fail(f"{what}: status {status:#x}, expected a normal exit with status 0")
