#!/usr/bin/env bash
# Regenerates the committed glyph fixture, tests/fixtures/glyphs/{train,val,new},
# from Debian's CJK font packages with `metricann dataset glyphs`. Same fonts →
# same bytes. Needs: apt-get install fonts-noto-cjk fonts-noto-cjk-extra
#   fonts-wqy-zenhei fonts-wqy-microhei fonts-arphic-uming fonts-arphic-ukai
#   fonts-droid-fallback fonts-ipafont-gothic fonts-ipaexfont-mincho fonts-vlgothic
#   fonts-takao-mincho fonts-hanazono fonts-cwtex-ming
# tests/fixtures/bad/ is hand-made and not touched here: corrupt.jpg is the first
# half of a 64×64 JPEG of a glyph, empty.png is 0 bytes, text.png is text.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/fonts.sh

cargo build --workspace --all-targets
BIN="${CARGO_TARGET_DIR:-target}/debug/metricann"

OUT=tests/fixtures/glyphs
rm -rf "$OUT"
# 32 + 8 common GB2312 level-1 characters that Chinese and Japanese fonts share,
# and 2 level-2 characters (unseen-class evaluation).
"$BIN" dataset glyphs --chars 人大山水火木日月田口石土金工王天中小上下手目耳心白米竹羊牛雨力子 \
  --fonts "${FONTS[@]}" --out "$OUT/train" --size 64 --min-fonts 8
"$BIN" dataset glyphs --chars 女夫文方生立百千 --fonts "${FONTS[@]}" --out "$OUT/val" --size 64 --min-fonts 8
"$BIN" dataset glyphs --chars 廿夭 --fonts "${FONTS[@]}" --out "$OUT/new" --size 64 --min-fonts 8
du -sh --apparent-size "$OUT"
