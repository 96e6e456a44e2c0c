#!/usr/bin/env bash
# Instructions per parse for the http_parse functions (berth's RequestParser::parse and bare
# httparse), counted by callgrind: builds the `callgrind` bench target with the bench profile
# (fat LTO, one codegen unit), runs it under valgrind once per function and input, and prints
# the instructions of one call of each function (the out-of-line `*_once` functions of
# benches/callgrind.rs, callgrind's inclusive cost divided by the number of calls) and of one
# iteration of the loop around it.
#
# usage: benches/callgrind.sh [ITERATIONS [OUT_DIR]]
#   ITERATIONS  parses per function and input (default 100000)
#   OUT_DIR     keep the callgrind.out.FUNCTION.INPUT files there, for callgrind_annotate
#
# Needs valgrind (with callgrind_annotate, which ships with it). Takes about 10 s after the
# build. The counts are exact for one build, but fat LTO decides inlining over the whole
# program, so a change anywhere in the binary, this harness included, can move them by a few
# percent (see benches/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."

iterations=${1:-100000}
keep=${2:-}
case $iterations in
    '' | *[!0-9]*) echo "callgrind.sh: ITERATIONS must be a number, not '$iterations'" >&2; exit 2 ;;
esac
for tool in valgrind callgrind_annotate; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "callgrind.sh: $tool is not installed" >&2
        exit 1
    fi
done

echo "building benches/callgrind.rs (bench profile)..." >&2
bin=$(cargo bench --bench callgrind --no-run --message-format=json \
    | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
if [ -z "$bin" ] || [ ! -x "$bin" ]; then
    echo "callgrind.sh: no executable from the build of the callgrind bench" >&2
    exit 1
fi
# Every function parses every input, before anything is counted.
"$bin" --test

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
out_dir=${keep:-$work}
mkdir -p "$out_dir"

# The inclusive count of FUNCTION (a demangled name) in a callgrind.out file.
inclusive() {
    callgrind_annotate --inclusive=yes --threshold=100 "$1" \
        | awk -v f=":$2 " 'index($0, f) && !found { gsub(",", "", $1); print $1; found = 1 }'
}

echo "valgrind $(valgrind --version | sed 's/^valgrind-//'), $(rustc --version), $iterations parses per function and input" >&2
printf '%-16s %10s %12s %7s   %s\n' input httparse berth_parse ratio "per loop iteration (httparse, berth_parse)"
for input in plaintext_147b browser_694b; do
    declare -A call=() iteration=()
    for function in httparse berth_parse; do
        out="$out_dir/callgrind.out.$function.$input"
        if ! valgrind --tool=callgrind --callgrind-out-file="$out" \
            "$bin" "$function" "$input" "$iterations" 2>"$work/valgrind.log"; then
            cat "$work/valgrind.log" >&2
            exit 1
        fi
        once=$(inclusive "$out" "callgrind::${function}_once")
        loop=$(inclusive "$out" "callgrind::run_loop")
        if [ -z "$once" ] || [ -z "$loop" ]; then
            echo "callgrind.sh: no callgrind::${function}_once or run_loop in $out" >&2
            exit 1
        fi
        call[$function]=$once
        iteration[$function]=$loop
    done
    awk -v input="$input" -v n="$iterations" \
        -v h="${call[httparse]}" -v b="${call[berth_parse]}" \
        -v hl="${iteration[httparse]}" -v bl="${iteration[berth_parse]}" \
        'BEGIN { printf "%-16s %10.0f %12.0f %6.2fx   %.0f, %.0f\n", input, h / n, b / n, b / h, hl / n, bl / n }'
done
if [ -n "$keep" ]; then
    echo "callgrind output kept in $keep (callgrind_annotate --inclusive=yes FILE)" >&2
fi
