#!/usr/bin/env bash
# Builds the libFuzzer target for the HTTP request parser and runs it.
#   fuzz/run.sh [SECONDS]   fuzz for SECONDS (default 60); exits non-zero on a crash, artifacts in fuzz/out/
# Environment: FUZZ_ARGS adds libFuzzer flags (e.g. FUZZ_ARGS="-runs=0" to replay the corpus only).
# To replay an input: fuzz/out/fuzz-request-parser FILE...
set -euo pipefail

seconds="${1:-60}"
[[ "$seconds" =~ ^[0-9]+$ ]] || { echo "usage: $0 [SECONDS]" >&2; exit 2; }

cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=fuzz/out
work=fuzz/corpus-work
binary="$out/fuzz-request-parser"
mkdir -p "$out" "$work"

# The parser is pure Swift without Foundation: its three files and the target form one module.
# -parse-as-library: no top-level code, libFuzzer provides main. Same language settings as Package.swift.
echo "building $binary" >&2
swiftc -sanitize=fuzzer,address -parse-as-library -O -g \
    -swift-version 6 -enable-upcoming-feature ExistentialAny -enable-upcoming-feature MemberImportVisibility \
    -module-name HTTPParserFuzz -use-ld=lld \
    Sources/HTTPServer/HTTPTypes.swift \
    Sources/HTTPServer/RequestHeadParser.swift \
    Sources/HTTPServer/ChunkedDecoder.swift \
    fuzz/FuzzRequestParser.swift \
    -o "$binary"

cp -n fuzz/corpus/* "$work"/ 2>/dev/null || true

log="$out/fuzz.log"
echo "fuzzing for ${seconds}s; corpus $work ($(ls "$work" | wc -l) files), log $log" >&2
status=0
# Let libFuzzer handle a crash: the Swift runtime backtracer stalls on an ASan process and no artifact is written.
export SWIFT_BACKTRACE=enable=no
# shellcheck disable=SC2086  # FUZZ_ARGS is a list of flags
"$binary" -max_total_time="$seconds" -max_len=4096 -timeout=5 -print_final_stats=1 \
    -artifact_prefix="$out/" ${FUZZ_ARGS:-} \
    "$work" 2>&1 | tee "$log" || status=$?

echo "---- summary ----"
grep -E '^#[0-9]+[[:space:]]+DONE|^stat::' "$log" || true
echo "corpus: $(ls "$work" | wc -l) files"
if [[ $status -ne 0 ]]; then
    echo "FUZZER FAILED (exit $status); artifacts:" >&2
    ls -1 "$out" | grep -E '^(crash|leak|timeout|oom|slow-unit)-' >&2 || true
fi
exit "$status"
