/**
 * The long-lived probe helper's program (python3, started once per gateway inside its
 * network namespace; see prober.ts). One JSON object per line each way:
 *
 *   → {"id", "op": "echo", "count", "interval", "wait", "probes": [[addr, data, df]…]}
 *   ← {"id", "results": [[sent, received, rtt]…]}   rtt: average ms (3 decimals), null if none came
 *   (echo as arrays, not objects: the per-peer part of a check's two lines, issue 18)
 *   → {"id", "op": "frames", "identity", "devices"}
 *   ← {"id", "sent": [device…], "failed": {device: why}}
 *   → {"id", "op": "beacons", "identity", "devices"}       the loop beacons (loop-beacon.ts)
 *   ← {"id", "sent": [device…], "failed": {device: why}}
 *   → {"id", "op": "links"}      every device of the namespace, from /sys/class/net
 *   ← {"id", "links": [{"ifname", "up", "rx", "tx", "txd"?}…]}   up: IFF_UP; rx/tx: packets;
 *                                        txd: tx_dropped, VXLAN devices (l2fv…) only
 *   → {"id", "op": "nft-list", "family", "table", "sets"?}   nft -j list table, via
 *                                        libnftables; with "sets": list set … of each
 *                                        instead (one JSON document per line)
 *   ← {"id", "exitCode", "stdout", "stderr"}
 *   → {"id", "op": "nft-gen"}     the namespace's nftables ruleset generation
 *   ← {"id", "gen"}                      (NFT_MSG_GETGEN): bumped by every committed nft
 *                                        transaction, not by counters or by the packet
 *                                        path's set updates
 *
 * Echo is ICMP echo on one raw socket (the peer's kernel answers: no responder, nothing
 * to open in the firewall): for every probe of the batch, `count` requests `interval` s
 * apart with `data` payload bytes, don't-fragment (IP_MTU_DISCOVER = IP_PMTUDISC_DO)
 * when `df`, then up to `wait` s for the answers — what `ping -c count -i interval -W
 * wait [-M do -s data]` did per probe. A batch is sent in rounds, so the helper's work
 * per wake-up does not grow with the peers (one check's probes are one batch). A
 * request the kernel refuses to send (EMSGSIZE for a DF packet over the route MTU)
 * counts as sent and unanswered, as in ping. Frames are the per-network L2 probe frames
 * of l2-probe.ts (AF_PACKET). The first line out is {"ready": true}, or {"ready": false,
 * "error"} and exit when raw sockets are not allowed. It exits when its stdin closes.
 */
import { PROBE_DST_MAC, PROBE_ETHERTYPE } from './l2-probe.js';
import { LOOP_BEACON_ETHERTYPE, LOOP_BEACON_MAC } from './loop-guard.js';

export const HELPER_SCRIPT = `
import json, os, random, select, socket, struct, sys, time
IP_MTU_DISCOVER, IPV6_MTU_DISCOVER, PMTU_WANT, PMTU_DO = 10, 23, 1, 2
SO_RCVBUFFORCE = 33
DST = bytes.fromhex("${PROBE_DST_MAC.replaceAll(':', '')}")
BEACON_DST = bytes.fromhex("${LOOP_BEACON_MAC.replaceAll(':', '')}")
ident = random.randrange(1, 0xFFFF)
socks, fams, pending, batches, payloads, dfs = {}, {}, {}, [], {}, {}
seq = 0

def out(m):
    sys.stdout.write(json.dumps(m, separators=(",", ":")) + "\\n")
    sys.stdout.flush()

def payload(n):
    # The payload and its 16-bit word sum, once per size (the checksum adds the header).
    p = payloads.get(n)
    if p is None:
        d = (b"l2fed-probe" * (n // 11 + 1))[:n]
        w = d + b"\\0" if n % 2 else d
        p = payloads[n] = (d, sum(struct.unpack("!%dH" % (len(w) // 2), w)))
    return p

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
        try:
            s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 4 << 20)  # a round of many peers' replies
        except OSError:
            pass
        s.setblocking(False)
        socks[fam] = s
        fams[s.fileno()] = (fam, s)
    return s

def set_df(s, fam, df):
    # The socket keeps the option: a syscall only when it changes (a check's echoes mostly
    # share it), not one per echo.
    if dfs.get(s) is not df:
        if fam == socket.AF_INET:
            s.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, PMTU_DO if df else PMTU_WANT)
        else:
            s.setsockopt(socket.IPPROTO_IPV6, IPV6_MTU_DISCOVER, PMTU_DO if df else PMTU_WANT)
        dfs[s] = df

def send_one(e, b, now):
    global seq
    seq = (seq + 1) & 0xFFFF
    s = e["sock"]
    try:
        set_df(s, e["fam"], e["df"])
        if e["fam"] == socket.AF_INET:
            c = e["sum"] + seq
            c = (c >> 16) + (c & 0xFFFF)
            c = ~(c + (c >> 16)) & 0xFFFF
            pkt = struct.pack("!BBHHH", 8, 0, c, ident, seq) + e["payload"]
        else:
            pkt = struct.pack("!BBHHH", 128, 0, 0, ident, seq) + e["payload"]  # the kernel sums ICMPv6
        s.sendto(pkt, e["to"])
    except OSError:
        pass  # e.g. EMSGSIZE: a DF packet over the route MTU; sent, never answered
    pending[seq] = (e, b, now)
    e["sent"] += 1

def receive(fam, s, now):
    while True:
        try:
            pkt, src = s.recvfrom(65535)
        except OSError:
            return
        icmp = pkt[(pkt[0] & 0xF) * 4 :] if fam == socket.AF_INET else pkt
        if len(icmp) < 8:
            continue
        t, _, _, i, sq = struct.unpack("!BBHHH", icmp[:8])
        if t != (0 if fam == socket.AF_INET else 129) or i != ident or sq not in pending:
            continue
        e, b, at = pending[sq]
        if src[0] != e["addr"] and socket.inet_pton(fam, src[0]) != e["bin"]:
            continue
        del pending[sq]
        e["rtts"].append((now - at) * 1000)
        b["outstanding"] -= 1

def frames(m, beacons=False):
    sent, failed = [], {}
    for dev in m["devices"]:
        try:
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
            try:
                s.bind((dev, 0))
                src = s.getsockname()[4]
                if beacons:
                    # As loop-beacon.ts: a fresh nonce first, then text for people.
                    body = os.urandom(4) + ("l2fed-loop " + m["identity"] + " " + dev).encode()[:200]
                    s.send(BEACON_DST + src + (${LOOP_BEACON_ETHERTYPE}).to_bytes(2, "big") + body.ljust(46, b"."))
                else:
                    body = ("l2fed-probe " + m["identity"] + " " + dev).encode()[:200].ljust(46, b".")
                    s.send(DST + src + (${PROBE_ETHERTYPE}).to_bytes(2, "big") + body)
            finally:
                s.close()
            sent.append(dev)
        except OSError as e:
            failed[dev] = str(e).replace(chr(10), " ")
    out({"id": m["id"], "sent": sent, "failed": failed})

def links(m):
    # ip netns exec mounts the namespace's own sysfs, so these are the namespace's devices:
    # the counters 'ip -s -j link show' printed (stats64), without a process per check.
    res = []
    for name in os.listdir("/sys/class/net"):
        base = "/sys/class/net/" + name
        try:
            with open(base + "/flags") as f:
                flags = int(f.read(), 16)
            with open(base + "/statistics/rx_packets") as f:
                rx = int(f.read())
            with open(base + "/statistics/tx_packets") as f:
                tx = int(f.read())
            entry = {"ifname": name, "up": bool(flags & 1), "rx": rx, "tx": tx}
            if name.startswith("l2fv"):
                # VXLAN devices only: frames the kernel dropped on their way to peers.
                with open(base + "/statistics/tx_dropped") as f:
                    entry["txd"] = int(f.read())
        except (OSError, ValueError):
            continue  # went away while read
        res.append(entry)
    out({"id": m["id"], "links": res})

def nft_list(m):
    # libnftables (what the nft command runs) through ctypes: the loop monitor's table read
    # every check without a process. A fresh context per call: a kept one caches the
    # ruleset, counters included. Fails (an error answer) where the library is missing.
    import ctypes
    lib = ctypes.CDLL("libnftables.so.1")
    lib.nft_ctx_new.restype = ctypes.c_void_p
    lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
    for f in ("nft_ctx_buffer_output", "nft_ctx_buffer_error", "nft_ctx_free"):
        getattr(lib, f).argtypes = [ctypes.c_void_p]
    lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
    lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    for f in ("nft_ctx_get_output_buffer", "nft_ctx_get_error_buffer"):
        getattr(lib, f).argtypes = [ctypes.c_void_p]
        getattr(lib, f).restype = ctypes.c_char_p
    def run(cmd):
        ctx = lib.nft_ctx_new(0)
        if not ctx:
            raise OSError("nft_ctx_new failed")
        try:
            lib.nft_ctx_output_set_flags(ctx, 1 << 4)  # NFT_CTX_OUTPUT_JSON, as nft -j
            lib.nft_ctx_buffer_output(ctx)
            lib.nft_ctx_buffer_error(ctx)
            rc = lib.nft_run_cmd_from_buffer(ctx, cmd.encode())
            o = (lib.nft_ctx_get_output_buffer(ctx) or b"").decode(errors="replace")
            e = (lib.nft_ctx_get_error_buffer(ctx) or b"").decode(errors="replace")
        finally:
            lib.nft_ctx_free(ctx)
        return rc, o, e
    if m.get("sets"):
        # Only these sets (a table's rules are most of its listing, issue 18), one run
        # each: nft 1.0.6 fills its cache for one set only when a run lists several.
        outs = []
        for name in m["sets"]:
            rc, o, e = run("list set %s %s %s" % (m["family"], m["table"], name))
            if rc != 0:
                break
            outs.append(o.strip())
        o = "\\n".join(outs) + "\\n"
    else:
        rc, o, e = run("list table %s %s" % (m["family"], m["table"]))
    out({"id": m["id"], "exitCode": 0 if rc == 0 else 1, "stdout": o, "stderr": e})

def nft_gen(m):
    # NFT_MSG_GETGEN (NFNL_SUBSYS_NFTABLES 10 << 8 | 16) on NETLINK_NETFILTER: a 20-byte
    # request, the answer's NFTA_GEN_ID (attribute 1, big-endian u32). Cheaper than any
    # listing, so the loop monitor reads its whole table only when this moved.
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 12)
    try:
        s.settimeout(1)  # the kernel answers within send(); never hold the helper's loop
        s.send(struct.pack("=IHHIIBBH", 20, (10 << 8) | 16, 1, 1, 0, 0, 0, 0))
        data = s.recv(65536)
    finally:
        s.close()
    n, typ = struct.unpack_from("=IH", data, 0)
    if typ == 2:  # NLMSG_ERROR
        err = -struct.unpack_from("=i", data, 16)[0]
        raise OSError(err, os.strerror(err))
    if typ != (10 << 8) | 15:  # NFT_MSG_NEWGEN
        raise OSError("unexpected netlink answer type %d" % typ)
    off = 20
    while off + 4 <= min(n, len(data)):
        alen, atype = struct.unpack_from("=HH", data, off)
        if alen < 4:
            break
        if atype & 0x3FFF == 1 and alen >= 8:
            out({"id": m["id"], "gen": struct.unpack_from("!I", data, off + 4)[0]})
            return
        off += (alen + 3) & ~3
    raise OSError("no NFTA_GEN_ID in the kernel's answer")

def start(m, now):
    entries = []
    for addr, data, df in m["probes"]:
        fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
        d, dsum = payload(int(data))
        entries.append(dict(addr=addr, fam=fam, bin=socket.inet_pton(fam, addr), to=(addr, 0),
                            sock=sock(fam), payload=d, sum=0x0800 + ident + dsum,
                            df=bool(df), sent=0, rtts=[]))
    b = dict(id=m["id"], entries=entries, count=int(m["count"]), interval=float(m["interval"]),
             wait=float(m["wait"]), rounds=0, last=now, outstanding=0)
    batches.append(b)
    send_round(b, now)

def send_round(b, now):
    for e in b["entries"]:
        send_one(e, b, now)
    b["rounds"] += 1
    b["last"] = now
    b["outstanding"] += len(b["entries"])

def done(b):
    for sq in [k for k, v in pending.items() if v[1] is b]:
        del pending[sq]
    res = []
    for e in b["entries"]:
        r = e["rtts"]
        res.append([e["sent"], len(r), round(sum(r) / len(r), 3) if r else None])
    out({"id": b["id"], "results": res})

try:
    sock(socket.AF_INET)
except OSError as e:
    out({"ready": False, "error": str(e)})
    sys.exit(1)
out({"ready": True})
buf = b""
while True:
    now = time.monotonic()
    # Answers already here count before any batch times out (a starved helper must not
    # call a path dead whose replies sit in the socket).
    if batches:
        for fam, s in list(fams.values()):
            receive(fam, s, now)
    timeout = None
    for b in list(batches):
        if b["rounds"] < b["count"]:
            due = b["last"] + b["interval"]
            if due <= now:
                send_round(b, now)
                due = now + (b["interval"] if b["rounds"] < b["count"] else b["wait"])
        elif b["outstanding"] <= 0 or now >= b["last"] + b["wait"]:
            batches.remove(b)
            done(b)
            continue
        else:
            due = b["last"] + b["wait"]
        timeout = max(0.0, due - now) if timeout is None else min(timeout, max(0.0, due - now))
    ready, _, _ = select.select([0] + list(fams), [], [], timeout)
    now = time.monotonic()
    for fd in ready:
        if fd == 0:
            # 64 KiB, not 1 MiB: a buffer that large is an mmap and munmap per request
            # (strace), and a longer line is simply read in more chunks.
            chunk = os.read(0, 1 << 16)
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
                    elif m.get("op") == "beacons":
                        frames(m, beacons=True)
                    elif m.get("op") == "links":
                        links(m)
                    elif m.get("op") == "nft-list":
                        nft_list(m)
                    elif m.get("op") == "nft-gen":
                        nft_gen(m)
                    else:
                        out({"id": m.get("id"), "error": "unknown op"})
                except Exception as e:
                    out({"id": m.get("id"), "error": str(e)})
        else:
            receive(*fams[fd], now)
`;
