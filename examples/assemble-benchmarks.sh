#!/usr/bin/env bash
# Assembles BENCHMARKS.md from the sections `just bench` wrote. Usage: assemble COMMAND SECTION...
set -euo pipefail
command=$1
shift
cat <<HEAD
# Benchmarks

Produced by \`$command\` on $(date -u +%Y-%m-%d) on this machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), kernel $(uname -r). Machines here are shared and noisy: compare rows of one run, not runs.

HEAD
for section in "$@"; do
    cat "$section"
    echo
done
