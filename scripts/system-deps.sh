#!/usr/bin/env bash
# System packages paperlab needs (Debian/Ubuntu): apertium EN<->ES (telephone), WordNet (METEOR synonyms),
# espeak-ng + sox + the 568 recorded Asterisk prompts (speech systems), Chromium + its driver (the dashboard test). Run as root or with sudo; prints what to do when it cannot.
set -u
PKGS="apertium-eng-spa wordnet-base espeak-ng sox asterisk-core-sounds-en-wav chromium chromium-driver"
missing=""
for p in $PKGS; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
[ -z "$missing" ] && { echo "system packages present:$PKGS"; exit 0; }
SUDO=""
[ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO="sudo"
if ! command -v apt-get >/dev/null 2>&1 || { [ "$(id -u)" -ne 0 ] && [ -z "$SUDO" ]; }; then
  echo "warning: cannot install system packages:$missing — install them with your package manager;" \
       "systems that need them will say so when run." >&2
  exit 0
fi
echo "installing system packages:$missing"
$SUDO apt-get update -qq >/dev/null 2>&1 || true
if ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null; then
  echo "warning: apt-get could not install:$missing — the telephone MT chains (apertium) and METEOR synonyms" \
       "(WordNet) need them; run: apt-get install$missing" >&2
fi
exit 0
