#!/usr/bin/env bash
# Install hfpipe's Snakemake profiles (local, slurm, condor, gpu) where Snakemake looks for
# profiles by name, so `snakemake --profile condor` works from any folder:
#   bash profiles/install.sh           # → ~/.config/snakemake/<name>/config.yaml
#   bash profiles/install.sh --force   # overwrite profiles of those names already there
# Without --force an existing profile is left as it is (and said so).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
target=${XDG_CONFIG_HOME:-$HOME/.config}/snakemake
force=false
[ "${1:-}" = --force ] && force=true
for profile in "$here"/*/; do
    name=$(basename "$profile")
    # profiles/default is the workflow's own profile (Snakemake finds it in the checkout)
    [ "$name" = default ] && continue
    if [ -e "$target/$name" ] && ! $force; then
        echo "kept $target/$name (exists; --force overwrites)" >&2
        continue
    fi
    mkdir -p "$target/$name"
    cp "$profile"config.yaml "$target/$name/config.yaml"
    echo "installed $target/$name" >&2
done
