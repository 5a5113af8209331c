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
import re
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the tree
from ptyterm import Term, ok  # noqa: E402

ESPRIT, SOCKET, HOME, CONTROLD_PID, PIDFILE = sys.argv[1:6]
RESTART = sys.argv[sys.argv.index("--") + 1:]
PROMPT = "esprit-> "

t = Term([ESPRIT, "--socket", SOCKET], HOME)
expect, send, fail, text = t.expect, t.send, t.fail, t.text

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
t.wait_exit("exit")
ok("'exit' ends the shell with status 0")

# A second shell, with its own prompt name: Ctrl-D on an empty line leaves.
t = Term([ESPRIT, "--socket", SOCKET, "--prompt", "gw1"], HOME)
expect, send, fail, text = t.expect, t.send, t.fail, t.text
expect(re.escape("gw1-> "), "the prompt carries the --prompt name")
send("\x04")
t.wait_exit("Ctrl-D")
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
