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

import re
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the tree
from ptyterm import Term, ok  # noqa: E402

ESPRIT, SOCKET, HOME, CONFIG = sys.argv[1:5]
PROMPT = "esprit-> "

t = Term([ESPRIT, "--socket", SOCKET], HOME)
expect, send, fail, text = t.expect, t.send, t.fail, t.text

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
t.wait_exit("exit")
if "never applied" in text():
    fail("a line was never applied")
ok("'exit' (no context open) ends the shell with status 0")
