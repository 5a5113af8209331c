"""Pastes a ScreenOS-saved configuration into the esprit shell through a
pseudo-terminal, as a terminal pastes (bracketed paste: every line in one
edit, then Enter), and saves it.

    pty_paste.py ESPRIT SOCKET HOME CONFIG

Checks, in order: the paste runs line by line (the seed's bind of vpn
"test" to tunnel.1, which comes before tunnel.1 is defined, waits and is
applied once tunnel.1 is); no line fails and none is left waiting; the
policy and vrouter contexts' `exit` lines do not leave the shell; `get sa`
shows one HEX ID per proxy-ID (00000001 to 00000004); `save` writes the
configuration; `exit` then ends the shell with status 0.
Prints one line per check; exits 1 on the first failure, after showing the
end of the screen (keys masked).
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

ESPRIT, SOCKET, HOME, CONFIG = sys.argv[1:5]
PROMPT = "esprit-> "
CSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

child, fd = pty.fork()
if child == 0:
    os.environ.update(HOME=HOME, TERM="xterm")
    os.execv(ESPRIT, [ESPRIT, "--socket", SOCKET])
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 200, 0, 0))
raw = b""
seen = 0


def text():
    return CSI.sub("", raw.decode("utf-8", "replace")).replace("\r", "")


def pump(timeout):
    global raw
    r, _, _ = select.select([fd], [], [], timeout)
    if not r:
        return
    try:
        data = os.read(fd, 65536)
    except OSError:
        data = b""
    if not data:
        raise EOFError
    if b"\x1b[6n" in data:
        os.write(fd, b"\x1b[1;1R")
    raw += data


def fail(what):
    screen = re.sub(r"(key|preshare) +\S+", r"\1 <masked>", text())
    sys.stderr.write("---- end of the screen ----\n" + screen[-4000:] + "\n----\n")
    print(f"FAIL {what}")
    try:
        os.kill(child, signal.SIGKILL)
    except ProcessLookupError:
        pass
    sys.exit(1)


def expect(pattern, what, timeout=20.0):
    global seen
    deadline = time.monotonic() + timeout
    while True:
        m = re.compile(pattern).search(text(), seen)
        if m:
            seen = m.end()
            return m
        left = deadline - time.monotonic()
        if left <= 0:
            fail(f"{what} (waited {timeout} s for {pattern!r})")
        try:
            pump(min(left, 0.2))
        except EOFError:
            fail(f"{what} (the shell ended, waiting for {pattern!r})")


def send(keys):
    os.write(fd, keys.encode())


def ok(what):
    print(f"ok   {what}")


expect(re.escape(PROMPT), "the shell shows its prompt")
lines = [l for l in open(CONFIG).read().splitlines() if l.strip()]
# Bracketed paste (the terminal marks the pasted text), then Enter.
send("\x1b[200~" + "\r".join(lines) + "\x1b[201~\r")
expect(r'applied the line that waited: set vpn "test" id 0x1 bind interface tunnel\.1',
       "the bind that names tunnel.1 before it is defined waits, then runs", timeout=60)
ok("the seed's bind before tunnel.1 waited and was applied once tunnel.1 was defined")
send("get sa\r")
expect(r"total configured sa: 4", "get sa after the paste", timeout=60)
m = expect(r"((?:0000000[1-4][<>].*\n){8})", "eight rows, HEX IDs 1 to 4")
ids = [l[:9] for l in m.group(1).splitlines()]
if ids != ["0000000%d%s" % (i, d) for i in range(1, 5) for d in "<>"]:
    fail(f"HEX IDs {ids}")
expect(re.escape(PROMPT), "prompt after get sa")
ok("every pasted line ran, the exit lines closed their contexts, get sa shows HEX IDs 00000001-00000004")
screen = text()
errors = [l for l in screen.splitlines()
          if l.startswith("esprit: ") and "waits" not in l and "waited" not in l
          and "names unknown interface \"tunnel.1\"" not in l]
if errors:
    fail(f"errors during the paste: {errors}")
ok("no other line failed, none is left waiting")
send("save\r")
expect(r"configuration saved to ", "save")
expect(re.escape(PROMPT), "prompt after save")
ok("save")
send("exit\r")
deadline = time.monotonic() + 10
while time.monotonic() < deadline:
    try:
        pump(0.2)
    except EOFError:
        break
_, status = os.waitpid(child, 0)
if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
    fail(f"exit: status {status:#x}, expected a normal exit with status 0")
if "never applied" in text():
    fail("a line was never applied")
ok("'exit' (no context open) ends the shell with status 0")
