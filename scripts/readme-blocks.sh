#!/usr/bin/env bash
# Runs the code blocks of README.md, so that what a reader copies works:
#   ```go      a complete program: gofmt-clean, built inside this module (an
#              overlay places it at _readme/blockN, so it imports the
#              module's packages), then run with a time bound; it must exit 0.
#   ```sh      every command line is run in a copy of the working tree with a
#              time bound and must exit 0 — except `bash scripts/test.sh`,
#              which is what runs this script. A line that would change the
#              machine (ip, netns, kill, apt-get, rm, ...) fails the check
#              unrun: such blocks must be marked `sh tap`.
#   ```sh tap  the TAP recipe: needs root and network namespaces; skipped
#              here (the interop suite covers it).
#   ```        (no language) diagrams and output: not code.
# Any other fence language fails, so no block goes untested by accident.
# Usage: bash scripts/readme-blocks.sh [FILE]   (default README.md)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
readme=${1:-README.md}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/tree"
tar --exclude=./.git -cf - . | tar -xf - -C "$tmp/tree"

# Split the file into blocks: $tmp/N.lang holds the fence's info string,
# $tmp/N.body the lines.
awk -v dir="$tmp" '
	/^```/ {
		if (!inblock) { inblock = 1; n++; info = substr($0, 4); sub(/[ \t]+$/, "", info)
			print info > (dir "/" n ".lang"); printf "" > (dir "/" n ".body"); next }
		inblock = 0; next
	}
	inblock { print >> (dir "/" n ".body") }
	END { if (inblock) { print "unterminated code block" > "/dev/stderr"; exit 1 } }
' "$readme"

fail=0
ngo=0
nsh=0
for lang in $(ls "$tmp"/*.lang 2>/dev/null | sort -V); do
	n=$(basename "$lang" .lang)
	body="$tmp/$n.body"
	info=$(cat "$lang")
	line=$(grep -n -m1 -F -x -f <(head -n1 "$body") "$readme" | cut -d: -f1 || true)
	where="$readme block $n (line ${line:-?})"
	case "$info" in
	go)
		ngo=$((ngo + 1))
		mkdir -p "$tmp/go$n"
		cp "$body" "$tmp/go$n/main.go"
		if [ -n "$(gofmt -l "$tmp/go$n/main.go")" ]; then
			echo "FAIL $where: not gofmt-clean:"; gofmt -d "$tmp/go$n/main.go" | sed -n '1,20p'; fail=1; continue
		fi
		printf '{"Replace":{"%s/_readme/block%s/main.go":"%s/go%s/main.go"}}' "$root" "$n" "$tmp" "$n" >"$tmp/go$n.json"
		if ! go build -overlay="$tmp/go$n.json" -o "$tmp/go$n/prog" "./_readme/block$n" 2>"$tmp/go$n.err"; then
			echo "FAIL $where: does not build:"; sed 's/^/    /' "$tmp/go$n.err"; fail=1; continue
		fi
		if (cd "$tmp/go$n" && timeout 60 ./prog >"$tmp/go$n.out" 2>&1); then
			echo "ok   $where (go): $(head -n1 "$tmp/go$n.out")"
		else
			echo "FAIL $where: exit status $? (124: over 60 s):"; sed 's/^/    /' "$tmp/go$n.out"; fail=1
		fi
		;;
	sh)
		# Lines continued with a backslash are one command.
		while IFS= read -r cmd; do
			cmd=${cmd%%#*} # a trailing comment explains; it is not part of the command
			cmd=$(echo "$cmd" | sed 's/[ \t]*$//')
			[ -z "$cmd" ] && continue
			case "$cmd" in
			*"&") echo "FAIL $where: '$cmd' leaves a process running: mark its block \`sh tap\`"; fail=1; continue ;;
			esac
			case "$cmd" in
			"bash scripts/test.sh") echo "skip $where: $cmd (this script is part of it)"; continue ;;
			esac
			# A command that changes the machine (namespaces, devices, packages,
			# processes) belongs in a `sh tap` block; never run one by mistake.
			if echo "$cmd" | grep -q -E '(^|[;&|] *)(sudo|ip|kill|pkill|apt-get|apt|rm|tc|sysctl|nft|iptables)( |$)|netns|tuntap'; then
				echo "FAIL $where: '$cmd' changes the machine: mark its block \`sh tap\` (not run here)"; fail=1; continue
			fi
			nsh=$((nsh + 1))
			# A bound for a hung command: go run compiles first, on a busy machine.
			# In a copy of the tree, so that what a command writes (a build, a
			# pcap) does not land in the checkout.
			if (cd "$tmp/tree" && timeout 600 bash -c "$cmd" >"$tmp/sh.out" 2>&1 </dev/null); then
				echo "ok   $where (sh): $cmd"
			else
				echo "FAIL $where: '$cmd' exited $? (124: over 600 s):"; tail -n 20 "$tmp/sh.out" | sed 's/^/    /'; fail=1
			fi
		done < <(sed -e ':a' -e '/\\$/{N;s/\\\n[ \t]*/ /;ba' -e '}' "$body")
		;;
	"sh tap") echo "skip $where: TAP recipe (root, network namespaces; run by the interop suite)" ;;
	"") ;;
	*) echo "FAIL $where: fence language '$info' is neither go, sh, 'sh tap' nor empty"; fail=1 ;;
	esac
done
if [ "$ngo" -eq 0 ]; then
	echo "FAIL: no Go block found in $readme (extraction broken?)"; fail=1
fi
echo "$ngo Go programs and $nsh commands from $readme"
exit $fail
