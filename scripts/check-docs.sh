#!/usr/bin/env bash
# Fails when a Markdown file of the repository points outside it: a machine
# path (/work/..., /home/...), the sibling ../shared tree, a relative link
# that climbs above the repository root, or a relative link to a file that
# does not exist. The docs are read by people with only a clone.
# Usage: bash scripts/check-docs.sh [FILE.md...]   (default: every tracked *.md)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
if [ $# -gt 0 ]; then files=("$@"); else mapfile -t files < <(git ls-files '*.md'); fi
fail=0
for f in "${files[@]}"; do
	# Names of places that exist only on the machine the project was built on.
	# BENCH.md and DESIGN.md were the project's notes outside the repository
	# (docs/benchmarks.md and the README's Architecture replace them).
	if grep -n -E '(^|[^A-Za-z0-9_.])(/work/|/home/|\.\./shared|~/)|(^|[^A-Za-z_/])(BENCH|DESIGN)\.md' "$f"; then
		echo "FAIL $f: names a path outside the repository (above)"; fail=1
	fi
	# Relative links: [text](target) and <img src=...> style are checked.
	dir=$(dirname "$f")
	while IFS=: read -r ln target; do
		target=${target%%#*} # an anchor inside the file
		[ -z "$target" ] && continue
		case "$target" in
		http://* | https://* | mailto:*) continue ;;
		/*) echo "FAIL $f:$ln: absolute link $target"; fail=1; continue ;;
		esac
		p=$(realpath -m "$dir/$target")
		case "$p" in
		"$root" | "$root"/*) ;;
		*) echo "FAIL $f:$ln: link $target leaves the repository"; fail=1; continue ;;
		esac
		if [ ! -e "$p" ]; then
			echo "FAIL $f:$ln: link $target: no such file in the repository"; fail=1
		fi
	done < <(grep -n -o -E '\]\([^) ]+\)' "$f" | sed -E 's/\]\(([^) ]+)\)$/\1/')
done
[ "$fail" -eq 0 ] && echo "docs: ${#files[@]} Markdown files name only files in the repository"
exit $fail
