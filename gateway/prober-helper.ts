/**
 * The long-lived probe helper's program (python3, started once per gateway inside its
 * network namespace; see prober.ts). One JSON object per line each way:
 *
 *   → {"id", "op": "echo", "addr", "count", "data", "df", "interval", "wait"}
 *   ← {"id", "sent", "received", "rtt"}            rtt: average ms, null when none came
 *   → {"id", "op": "frames", "identity", "devices"}
 *   ← {"id", "sent": [device…], "failed": {device: why}}
 *
 * Echo is ICMP echo on one raw socket (the peer's kernel answers: no responder, nothing
 * to open in the firewall): `count` requests `interval` s apart with `data` payload
 * bytes, don't-fragment (IP_MTU_DISCOVER = IP_PMTUDISC_DO) when `df`, then up to `wait`
 * s for the answers — what `ping -c count -i interval -W wait [-M do -s data]` did. A
 * request the kernel refuses to send (EMSGSIZE for a DF packet over the route MTU)
 * counts as sent and unanswered, as in ping. Frames are the per-network L2 probe frames
 * of l2-probe.ts (AF_PACKET). The first line out is {"ready": true}, or {"ready": false,
 * "error"} and exit when raw sockets are not allowed. It exits when its stdin closes.
 */
import { PROBE_DST_MAC, PROBE_ETHERTYPE } from './l2-probe.js';

export const HELPER_SCRIPT = `
import json, os, random, select, socket, struct, sys, time
IP_MTU_DISCOVER, IPV6_MTU_DISCOVER, PMTU_WANT, PMTU_DO = 10, 23, 1, 2
DST = bytes.fromhex("${PROBE_DST_MAC.replaceAll(':', '')}")
ident = random.randrange(1, 0xFFFF)
socks, fams, pending, probes = {}, {}, {}, []
seq = 0

def out(m):
    sys.stdout.write(json.dumps(m) + "\\n")
    sys.stdout.flush()

def csum(b):
    if len(b) % 2:
        b += b"\\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF

def sock(fam):
    s = socks.get(fam)
    if s is None:
        if fam == socket.AF_INET:
            s = socket.socket(fam, socket.SOCK_RAW, socket.IPPROTO_ICMP)
            s.setsockopt(255, 1, struct.pack("I", 0xFFFFFFFE))  # ICMP_FILTER: echo replies only
        else:
            s = socket.socket(fam, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
            f = [0xFFFFFFFF] * 8
            f[129 >> 5] &= ~(1 << (129 & 31))
            s.setsockopt(socket.IPPROTO_ICMPV6, 1, struct.pack("8I", *f))  # ICMP6_FILTER
        s.setblocking(False)
        socks[fam] = s
        fams[s.fileno()] = (fam, s)
    return s

def send_one(p, now):
    global seq
    seq = (seq + 1) & 0xFFFF
    s = sock(p["fam"])
    data = (b"l2fed-probe" * (p["data"] // 11 + 1))[: p["data"]]
    try:
        if p["fam"] == socket.AF_INET:
            s.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, PMTU_DO if p["df"] else PMTU_WANT)
            c = csum(struct.pack("!BBHHH", 8, 0, 0, ident, seq) + data)
            pkt = struct.pack("!BBHHH", 8, 0, c, ident, seq) + data
        else:
            s.setsockopt(socket.IPPROTO_IPV6, IPV6_MTU_DISCOVER, PMTU_DO if p["df"] else PMTU_WANT)
            pkt = struct.pack("!BBHHH", 128, 0, 0, ident, seq) + data  # kernel sums ICMPv6
        s.sendto(pkt, (p["addr"], 0))
    except OSError:
        pass
    pending[seq] = (p, now)
    p["sent"] += 1
    p["last"] = now

def receive(fam, s, now):
    while True:
        try:
            pkt, src = s.recvfrom(65535)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return
        icmp = pkt[(pkt[0] & 0xF) * 4 :] if fam == socket.AF_INET else pkt
        if len(icmp) < 8:
            continue
        t, _, _, i, sq = struct.unpack("!BBHHH", icmp[:8])
        if t != (0 if fam == socket.AF_INET else 129) or i != ident or sq not in pending:
            continue
        p, at = pending[sq]
        if socket.inet_pton(fam, src[0]) != p["bin"]:
            continue
        del pending[sq]
        p["rtts"].append((now - at) * 1000)

def frames(m):
    sent, failed = [], {}
    for dev in m["devices"]:
        try:
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
            try:
                s.bind((dev, 0))
                src = s.getsockname()[4]
                body = ("l2fed-probe " + m["identity"] + " " + dev).encode()[:200].ljust(46, b".")
                s.send(DST + src + (${PROBE_ETHERTYPE}).to_bytes(2, "big") + body)
            finally:
                s.close()
            sent.append(dev)
        except OSError as e:
            failed[dev] = str(e).replace(chr(10), " ")
    out({"id": m["id"], "sent": sent, "failed": failed})

def start(m, now):
    addr = m["addr"]
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    p = dict(id=m["id"], addr=addr, fam=fam, bin=socket.inet_pton(fam, addr), count=int(m["count"]),
             data=int(m["data"]), df=bool(m["df"]), interval=float(m["interval"]),
             wait=float(m["wait"]), sent=0, rtts=[], last=now)
    probes.append(p)
    send_one(p, now)

def done(p):
    for sq in [k for k, (q, _) in pending.items() if q is p]:
        del pending[sq]
    r = p["rtts"]
    out({"id": p["id"], "sent": p["sent"], "received": len(r), "rtt": sum(r) / len(r) if r else None})

try:
    sock(socket.AF_INET)
except OSError as e:
    out({"ready": False, "error": str(e)})
    sys.exit(1)
out({"ready": True})
buf = b""
while True:
    now = time.monotonic()
    timeout = None
    for p in list(probes):
        if p["sent"] < p["count"]:
            due = p["last"] + p["interval"]
            if due <= now:
                send_one(p, now)
                due = now + p["interval"]
        elif len(p["rtts"]) >= p["count"] or now >= p["last"] + p["wait"]:
            probes.remove(p)
            done(p)
            continue
        else:
            due = p["last"] + p["wait"]
        timeout = max(0.0, due - now) if timeout is None else min(timeout, max(0.0, due - now))
    ready, _, _ = select.select([0] + list(fams), [], [], timeout)
    now = time.monotonic()
    for fd in ready:
        if fd == 0:
            chunk = os.read(0, 65536)
            if not chunk:
                sys.exit(0)
            buf += chunk
            while b"\\n" in buf:
                line, buf = buf.split(b"\\n", 1)
                if not line.strip():
                    continue
                m = json.loads(line)
                try:
                    if m.get("op") == "echo":
                        start(m, now)
                    elif m.get("op") == "frames":
                        frames(m)
                    else:
                        out({"id": m.get("id"), "error": "unknown op"})
                except Exception as e:
                    out({"id": m.get("id"), "error": str(e)})
        else:
            receive(*fams[fd], now)
    for p in list(probes):
        if p["sent"] >= p["count"] and len(p["rtts"]) >= p["count"]:
            probes.remove(p)
            done(p)
`;
