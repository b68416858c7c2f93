#!/usr/bin/env bash
# Makes dns-primary.pcap and dns-secondary.pcap beside this script: real traffic for the
# `replay` tests. Each is the output of one "host": a real DNS server (dnsmasq) alone in a
# network namespace, answering the same queries from outside it, captured on the host side of
# its veth link as colo-compare would see that guest's output. The two runs happen one after
# the other (so `replay --align-start` is needed to line them up) and differ in one record,
# as two replicas whose state diverged: the secondary serves a different TXT record.
#
# Run once, as root, on a machine with iproute2, dnsmasq (dnsmasq-base), tshark and python3;
# the pair it writes is committed, so the tests need none of these.
set -euo pipefail
cd "$(dirname "$0")"

for tool in ip dnsmasq tshark python3; do
  command -v "$tool" >/dev/null || { echo "make-pcaps.sh needs $tool" >&2; exit 1; }
done

NS=colo-pcap-host
HOST_IF=colo-pcap0
cleanup() {
  [[ -n "${DNSMASQ:-}" ]] && kill "$DNSMASQ" 2>/dev/null || true
  [[ -n "${TSHARK:-}" ]] && kill "$TSHARK" 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  ip link del "$HOST_IF" 2>/dev/null || true
}
trap cleanup EXIT

# The queries a client outside the guest sends, the same for both runs: fixed source port and
# message ids, so the two guests' answers belong to the same flows and can be compared.
QUERIES='
import socket, struct, time, sys
names = [("www.example.test", 1), ("mail.example.test", 1), ("version.example.test", 16),
         ("nothere.example.test", 1), ("www.example.test", 28), ("mail.example.test", 15)]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.77.0.1", 40053))
s.settimeout(2)
for round in range(2):
    for i, (name, qtype) in enumerate(names):
        qid = 0x1000 + round * 16 + i
        q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
        q += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
        q += struct.pack(">HH", qtype, 1)
        s.sendto(q, ("10.77.0.2", 53))
        s.recvfrom(4096)
        time.sleep(0.02)
'

capture() { # OUT.pcap TXT-VALUE
  local out=$1 txt=$2
  ip netns add "$NS"
  ip link add "$HOST_IF" type veth peer name eth0 netns "$NS"
  ip link set "$HOST_IF" address 02:00:00:00:00:01
  ip addr add 10.77.0.1/24 dev "$HOST_IF"
  ip link set "$HOST_IF" up
  ip -n "$NS" link set eth0 address 52:54:00:12:34:56
  ip -n "$NS" addr add 10.77.0.2/24 dev eth0
  ip -n "$NS" link set lo up
  ip -n "$NS" link set eth0 up
  # Static neighbours: no ARP in the middle of the capture.
  ip -n "$NS" neigh replace 10.77.0.1 lladdr 02:00:00:00:00:01 dev eth0
  ip neigh replace 10.77.0.2 lladdr 52:54:00:12:34:56 dev "$HOST_IF"
  ip netns exec "$NS" dnsmasq --keep-in-foreground --no-resolv --no-hosts --bind-interfaces \
    --listen-address=10.77.0.2 --port=53 --local=/example.test/ --local-ttl=300 \
    --host-record=www.example.test,10.77.0.80 --host-record=mail.example.test,10.77.0.25 \
    --mx-host=example.test,mail.example.test,10 \
    --txt-record="version.example.test,$txt" --pid-file= --user=root &
  DNSMASQ=$!
  tshark -q -i "$HOST_IF" -f "udp and src host 10.77.0.2 and src port 53" -F pcap -w "$out" &
  TSHARK=$!
  sleep 2
  python3 -c "$QUERIES"
  sleep 0.5
  kill -INT "$TSHARK"; wait "$TSHARK" || true; TSHARK=
  kill "$DNSMASQ"; wait "$DNSMASQ" || true; DNSMASQ=
  ip netns del "$NS"
  ip link del "$HOST_IF" 2>/dev/null || true
  sleep 1
}

capture dns-primary.pcap "build 42"
capture dns-secondary.pcap "build 43"
echo "wrote $(pwd)/dns-primary.pcap and dns-secondary.pcap"
