#!/usr/bin/env bash
# More training audio for the fingerprinter, beside ../shared/data/fetch_training_audio.sh's corpus.
#
#   scripts/extra_training_audio.sh BASE_CORPUS OUT     # needs apt (root); ~430 MB of downloads
#
# OUT gets the base corpus' package folders as symlinks plus, as whole packages (Debian, licences
# in each COPYRIGHT): wesnoth-1.16-music (ogg, GPL-2+ / CC-BY-SA), warzone2100-music (opus: the
# base recipe keeps only ogg/wav/mp3/flac, so its warzone2100-music folder is empty; GPL-2+ /
# CC0), hedgewars-data's music (music) and voice lines (speech). About 8 h more than the base
# corpus' 8.6 h of training audio; OUT/manifest.csv is the base manifest plus those files.
# None of the base corpus' validation packages changes, so `eval fingerprint --corpus BASE`
# scores a model trained on OUT on the same queries and reference as any other.
# Used by session 12's probes (README, Fingerprinter: "more training audio").
set -euo pipefail
base=$(realpath "$1"); out=$2
mkdir -p "$out"/{music,speech,sfx}; out=$(realpath "$out")
debs="$out/.debs"; mkdir -p "$debs"
for k in music speech sfx; do
  for d in "$base/$k"/*/; do
    p=$(basename "$d")
    [ -e "$out/$k/$p" ] || ln -s "$d" "$out/$k/$p"
  done
done
pkgs="wesnoth-1.16-music warzone2100-music hedgewars-data"
[ -n "$(ls /var/lib/apt/lists/ 2>/dev/null | grep -v lock | head -n1)" ] || apt-get update -qq
(cd "$debs" && apt-get download -qq $pkgs)
# add PACKAGE KIND SUBDIR: the package's audio under SUBDIR (flattened names) into OUT/KIND/PACKAGE
add() {
  local p=$1 k=$2 sub=$3 deb tmp dest
  deb=$(ls "$debs/${p}"_*.deb | head -n1); tmp="$out/.x-$p"
  [ -d "$tmp" ] || dpkg-deb -x "$deb" "$tmp"
  dest="$out/$k/$p"; rm -rf "$dest"; mkdir -p "$dest"
  (cd "$tmp" && find "$sub" -type f \( -iname '*.ogg' -o -iname '*.opus' \) -size +2k) |
  while IFS= read -r f; do cp "$tmp/$f" "$dest/$(echo "$f" | sed 's#^usr/share/##; s#/#__#g')"; done
  cp "$tmp/usr/share/doc/$p/copyright" "$dest/COPYRIGHT"
  dpkg-deb -f "$deb" Version > "$dest/VERSION"
}
# The base folder of a package it could not fill (warzone2100-music) is replaced, not written through.
rm -f "$out/music/warzone2100-music"
add wesnoth-1.16-music music usr
add warzone2100-music music usr
add hedgewars-data music usr/share/games/hedgewars/Data/Music
add hedgewars-data speech usr/share/games/hedgewars/Data/Sounds/voices
rm -rf "$out"/.x-* "$debs"
cp "$base/manifest.csv" "$out/manifest.csv"
for kd in music/wesnoth-1.16-music music/warzone2100-music music/hedgewars-data speech/hedgewars-data; do
  k=${kd%%/*}; p=${kd#*/}; v=$(cat "$out/$kd/VERSION")
  find "$out/$kd" -type f \( -iname '*.ogg' -o -iname '*.opus' \) | sort |
  while IFS= read -r f; do echo "${f#"$out"/},$k,$p,$v,$k/$p/COPYRIGHT"; done >> "$out/manifest.csv"
done
echo "$(($(wc -l < "$out/manifest.csv") - 1)) files in $out/manifest.csv"
