#!/usr/bin/env bash
# Usage: bash fuzz/run.sh SECONDS [TARGET...]
# Installs cargo-fuzz if missing, seeds the corpora, builds every target (address sanitizer,
# debug assertions, on stable rustc through RUSTC_BOOTSTRAP=1) and runs each target for SECONDS
# seconds on one core. Exits non-zero if any target fails to build or crashes; a crash leaves
# its input in fuzz/artifacts/<target>/.
set -uo pipefail

seconds="${1:?usage: run.sh SECONDS [TARGET...]}"
shift
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
export RUSTC_BOOTSTRAP=1
# FUZZ_SANITIZER=none falls back to an uninstrumented-memory build if ASan is unavailable.
sanitizer="${FUZZ_SANITIZER:-address}"

if ! cargo fuzz --version > /dev/null 2>&1; then
    echo "installing cargo-fuzz"
    cargo install cargo-fuzz --locked > /dev/null 2>&1 || cargo install cargo-fuzz > /dev/null 2>&1 || {
        echo "cannot install cargo-fuzz" >&2
        exit 2
    }
fi

bash "$here/seed.sh" > /dev/null || {
    echo "seeding the corpora failed (fuzz/seed.sh exited $?)" >&2
    exit 2
}

targets=("$@")
if (( ${#targets[@]} == 0 )); then
    mapfile -t targets < <(cargo fuzz list)
fi

# Logs live in a private directory: with -jobs=1 -workers=1 libFuzzer writes the run's output to
# fuzz-0.log in the current directory, and another run.sh (or a long run) may be using fuzz/.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

if ! cargo fuzz build -s "$sanitizer" > "$work/build.log" 2>&1; then
    tail -n 30 "$work/build.log" >&2
    echo "fuzz build failed" >&2
    exit 2
fi

failed=()
for t in "${targets[@]}"; do
    log="$work/fuzz-0.log"
    rm -f "$log" "$work/out"
    dirs=("$here/corpus/$t")
    # Minimized inputs of earlier findings are replayed as seeds.
    [[ -d "regressions/$t" ]] && dirs+=("$here/regressions/$t")
    if (cd "$work" && cargo fuzz run --fuzz-dir "$here" -s "$sanitizer" "$t" "${dirs[@]}" -- \
        -max_total_time="$seconds" -jobs=1 -workers=1 -print_final_stats=1 > "$work/out" 2>&1); then
        printf '%-12s ok     %s | %s execs\n' "$t" \
            "$(grep -E '^#[0-9]+' "$log" | tail -n 1 | cut -c1-90)" \
            "$(awk '/^stat::number_of_executed_units/ {print $2}' "$log")"
    else
        printf '%-12s CRASH\n' "$t"
        { [[ -s "$log" ]] && cat "$log" || cat "$work/out"; } |
            grep -E 'panicked at|^ERROR|^SUMMARY|Test unit written to|^[a-z].*:[0-9]+:[0-9]+:$' |
            head -n 8 | sed 's/^/    /'
        failed+=("$t")
    fi
done

if (( ${#failed[@]} )); then
    echo "crashed: ${failed[*]}" >&2
    exit 1
fi
echo "all ${#targets[@]} targets ran ${seconds}s without a crash"
