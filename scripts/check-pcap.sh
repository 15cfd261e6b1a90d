#!/usr/bin/env bash
# check-pcap.sh FILE: tshark reads FILE with checksum validation on for
# IP, UDP and TCP (ICMP is always checked) and fails on any malformed
# packet, bad checksum, or TCP analysis warning; then checks the demo's
# protocols are all there.
set -euo pipefail
f=$1
command -v tshark >/dev/null || { echo "check-pcap: tshark is not installed"; exit 1; }
prefs=(-o ip.check_checksum:TRUE -o udp.check_checksum:TRUE -o tcp.check_checksum:TRUE)
bad=$(tshark -n -r "$f" "${prefs[@]}" -Y '_ws.malformed || _ws.expert.severity >= warning || ip.checksum.status == "Bad" || udp.checksum.status == "Bad" || icmp.checksum.status == "Bad" || tcp.checksum.status == "Bad" || tcp.analysis.flags' 2>/dev/null)
if [ -n "$bad" ]; then
	echo "check-pcap: tshark flags these packets:"
	echo "$bad"
	exit 1
fi
need() {
	n=$(tshark -n -r "$f" "${prefs[@]}" -Y "$1" 2>/dev/null | wc -l)
	if [ "$n" -eq 0 ]; then echo "check-pcap: no packet matches '$1'"; exit 1; fi
	printf '  %-45s %d packets\n' "$1" "$n"
}
need 'arp.opcode == 1'
need 'arp.opcode == 2'
need 'icmp.type == 8'
need 'icmp.type == 0'
need 'udp'
need 'ip.flags.mf == 1'
need 'ip.reassembled_in || ip.fragments'
need 'icmp.type == 3 && icmp.code == 3'
if [ "${CHECK_TCP:-1}" = 1 ] && tshark -n -r "$f" -Y tcp 2>/dev/null | grep -q .; then
	need 'tcp.flags.syn == 1 && tcp.flags.ack == 0'
	need 'tcp.flags.fin == 1'
fi
echo "check-pcap: $f is clean"
