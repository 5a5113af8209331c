"""Drives the esprit shell through a pseudo-terminal, as an operator would.

    pty_shell.py ESPRIT SOCKET HOME CONTROLD_PID PIDFILE -- RESTART_CMD...

Checks, in order: Tab completes `get s` to `get sa`; the up arrow recalls
the last command and runs it again (its output seen twice); a bad line
prints an error and the shell stays usable; `?` lists what may follow;
VPN names complete from the running configuration; when controld stops
the shell says so, and once it is back (RESTART_CMD, its PID written to
PIDFILE for the caller's cleanup) the next line works again; `exit` ends
the shell with status 0, and so does Ctrl-D (in a second shell, whose
prompt is set with --prompt); the history file holds the commands, mode
0600.
Prints one line per check; exits 1 on the first failure, after showing the
end of the screen (keys masked).
"""

import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import time

import fcntl
import termios

ESPRIT, SOCKET, HOME, CONTROLD_PID, PIDFILE = sys.argv[1:6]
RESTART = sys.argv[sys.argv.index("--") + 1:]
PROMPT = "esprit-> "
CSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def spawn(*args):
    child, master = pty.fork()
    if child == 0:
        os.environ.update(HOME=HOME, TERM="xterm")
        os.execv(ESPRIT, [ESPRIT, "--socket", SOCKET, *args])
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 200, 0, 0))
    return child, master


pid, fd = spawn()
raw = b""
seen = 0  # how much of the cleaned screen text the checks have consumed


def text():
    # The screen as plain text: escape sequences and carriage returns out.
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
    # The line editor asks where the cursor is; a terminal answers.
    if b"\x1b[6n" in data:
        os.write(fd, b"\x1b[1;1R")
    raw += data


def fail(what):
    screen = re.sub(r"(key|preshare) +\S+", r"\1 <masked>", text())
    sys.stderr.write("---- end of the screen ----\n" + screen[-3000:] + "\n----\n")
    print(f"FAIL {what}")
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    sys.exit(1)


def expect(pattern, what, timeout=15.0):
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
ok("prompt 'esprit-> '")

send("get s\t")
expect(r"get sa ", "Tab completes 'get s' to 'get sa'")
ok("Tab completes 'get s' to 'get sa'")
send("\r")
expect(r"total configured sa: 1", "get sa runs")
expect(re.escape(PROMPT), "prompt after get sa")
ok("the completed line runs (get sa output)")

send("\x1b[A")  # up arrow
expect(r"get sa", "the up arrow recalls 'get sa'")
send("\r")
expect(r"total configured sa: 1", "the recalled line runs")
expect(re.escape(PROMPT), "prompt after the recalled line")
runs = text().count("total configured sa: 1")
if runs != 2:
    fail(f"get sa output seen {runs} times, expected 2")
ok("the up arrow recalls and re-runs the previous command (output seen twice)")

send("get nonsense\r")
expect(r"esprit: .*unknown (command|word)", "a bad line prints an error")
expect(re.escape(PROMPT), "the shell goes on after the error")
send("get sa\r")
expect(r"total configured sa: 1", "the shell is usable after the error")
expect(re.escape(PROMPT), "prompt")
ok("'get nonsense' prints 'esprit: ... unknown ...' and the shell stays usable")

send("get ?\r")
expect(r"config", "'get ?' lists what may follow")
expect(re.escape(PROMPT), "prompt after ?")
ok("'get ?' lists the words that may follow")

send("unset vpn la\t")
expect(r"unset vpn lab-vpn ", "Tab completes a VPN name from the running configuration")
send("\x03")  # Ctrl-C drops the line
expect(re.escape(PROMPT), "Ctrl-C gives a new prompt")
ok("VPN names complete from the running configuration (unset vpn la -> lab-vpn)")

# controld stops: the shell says so and keeps going.
os.kill(int(CONTROLD_PID), signal.SIGTERM)
for _ in range(100):
    try:
        os.kill(int(CONTROLD_PID), 0)
    except ProcessLookupError:
        break
    time.sleep(0.1)
send("get sa\r")
expect(r"esprit: controld at \S+ (is not reachable|went away)", "a stopped controld is reported")
expect(re.escape(PROMPT), "prompt while controld is down")
ok("a stopped controld is reported, the shell stays")
p = subprocess.Popen(RESTART, stdout=subprocess.DEVNULL, stderr=open(os.path.join(HOME, "controld-2.log"), "w"))
with open(PIDFILE, "w") as f:
    f.write(str(p.pid))
for _ in range(100):
    if os.path.exists(SOCKET):
        break
    time.sleep(0.1)
time.sleep(0.5)
send("get sa\r")
expect(r"total configured sa: 1", "the shell connects again to the restarted controld")
expect(re.escape(PROMPT), "prompt")
ok("the next line connects again to the restarted controld")

send("exit\r")
deadline = time.monotonic() + 10
while time.monotonic() < deadline:
    try:
        pump(0.2)
    except EOFError:
        break
_, status = os.waitpid(pid, 0)
if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
    fail(f"exit: status {status:#x}, expected a normal exit with status 0")
ok("'exit' ends the shell with status 0")

# A second shell, with its own prompt name: Ctrl-D on an empty line leaves.
pid, fd = spawn("--prompt", "gw1")
raw, seen = b"", 0
expect(re.escape("gw1-> "), "the prompt carries the --prompt name")
send("\x04")
deadline = time.monotonic() + 10
while time.monotonic() < deadline:
    try:
        pump(0.2)
    except EOFError:
        break
_, status = os.waitpid(pid, 0)
if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
    fail(f"Ctrl-D: status {status:#x}, expected a normal exit with status 0")
ok("--prompt gw1 gives 'gw1-> '; Ctrl-D ends the shell with status 0")

hist = os.path.join(HOME, ".esprit_history")
try:
    lines = open(hist).read().splitlines()
    mode = os.stat(hist).st_mode & 0o777
except OSError as e:
    fail(f"history file: {e}")
if "get sa" not in lines or "get nonsense" not in lines or mode != 0o600:
    fail(f"history file {hist}: mode {mode:o}, lines {lines}")
ok(f"history persisted in ~/.esprit_history (mode 600, {len(lines)} lines)")
