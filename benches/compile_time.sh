#!/usr/bin/env bash
# Compile-time cost of #[server]: a generated crate with 20 servers x 10
# methods, built with and without the attribute. Prints the build times of
# that crate alone (dependencies prebuilt) and the generated lines per
# method (from the nightly `-Zunpretty=expanded` output, no extra tools).
#
# Usage: bash benches/compile_time.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$root/target/compile-time"
rm -rf "$work"
mkdir -p "$work"

make_crate() { # name, attribute line
    local dir="$work/$1"
    mkdir -p "$dir/src"
    cat > "$dir/Cargo.toml" <<TOML
[package]
name = "$1"
version = "0.0.0"
edition = "2024"
publish = false

[dependencies]
patchboard = { path = "$root" }
tokio = { version = "1", features = ["rt", "macros"] }

[workspace]
TOML
    {
        echo "#![allow(dead_code)]"
        for s in $(seq 1 20); do
            echo "pub struct Server$s { value: u64, log: Vec<String> }"
            echo "$2"
            echo "impl Server$s {"
            for m in $(seq 1 10); do
                echo "    /// Method $m."
                echo "    pub fn method_$m(&mut self, amount: u64, note: String) -> Result<u64, String> {"
                echo "        self.value += amount; self.log.push(note); Ok(self.value)"
                echo "    }"
            done
            echo "}"
        done
        echo "fn main() {}"
    } > "$dir/src/main.rs"
    (cd "$dir" && CARGO_TARGET_DIR="$work/target" cargo build --quiet 2>&1) >&2
    touch "$dir/src/main.rs"
    local start end
    start=$(date +%s.%N)
    (cd "$dir" && CARGO_TARGET_DIR="$work/target" cargo build --quiet)
    end=$(date +%s.%N)
    echo "$1: cargo build of the crate alone: $(echo "$end - $start" | bc) s"
    if cargo +nightly --version > /dev/null 2>&1; then
        (cd "$dir" && CARGO_TARGET_DIR="$work/target-nightly" cargo +nightly rustc --quiet --profile=check -- -Zunpretty=expanded 2>/dev/null) \
            | rustfmt --edition 2024 2>/dev/null | grep -cv '^\s*$' > "$work/$1.lines" || true
    fi
}

make_crate plain ""
make_crate served "#[patchboard::server]"
if [ -s "$work/plain.lines" ] && [ -s "$work/served.lines" ]; then
    plain=$(cat "$work/plain.lines")
    served=$(cat "$work/served.lines")
    echo "expanded non-blank lines: plain $plain, with #[server] $served"
    echo "generated lines per method: $(( (served - plain) / 200 )) (20 servers x 10 methods, including each server's fixed part)"
fi
