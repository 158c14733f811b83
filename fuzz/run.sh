#!/usr/bin/env bash
# Runs each fuzz target for a bounded time: FUZZ_SECONDS each (default 60),
# all targets unless named. Needs the nightly toolchain and cargo-fuzz
# (`cargo install cargo-fuzz`). Findings land in fuzz/artifacts/<target>/;
# the growing corpus in fuzz/corpus/<target>/ (neither is committed).
#
#   fuzz/run.sh                       # every target, 60 s each
#   FUZZ_SECONDS=1800 fuzz/run.sh commands snapshot
set -euo pipefail
cd "$(dirname "$0")"
seconds=${FUZZ_SECONDS:-60}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(frames frame_scanner commands snapshot config)
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target"
  extra=()
  [ "$target" = commands ] && extra+=(-dict=commands.dict)
  echo "== $target for ${seconds}s"
  # Allocations over 256 MiB count as findings: no input may make one.
  cargo +nightly fuzz run "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$seconds" -malloc_limit_mb=256 -rss_limit_mb=2048 -timeout=10 "${extra[@]}"
done
