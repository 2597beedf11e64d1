# The font files of the glyph data set (sourced by the scripts that render it):
# every face of the 13 Debian packages the core issue names.
FONTS=(
  /usr/share/fonts/opentype/noto/NotoSansCJK-{Thin,Light,DemiLight,Regular,Medium,Bold,Black}.ttc
  /usr/share/fonts/opentype/noto/NotoSerifCJK-{ExtraLight,Light,Regular,Medium,SemiBold,Bold,Black}.ttc
  /usr/share/fonts/truetype/wqy/wqy-{zenhei,microhei}.ttc
  /usr/share/fonts/truetype/arphic/{uming,ukai}.ttc
  /usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf
  /usr/share/fonts/opentype/ipafont-gothic/{ipag,ipagp}.ttf
  /usr/share/fonts/opentype/ipaexfont-mincho/ipaexm.ttf
  /usr/share/fonts/truetype/vlgothic/VL-{Gothic,PGothic}-Regular.ttf
  /usr/share/fonts/truetype/takao-mincho/{TakaoMincho,TakaoPMincho}.ttf
  /usr/share/fonts/truetype/hanazono/{HanaMinA,HanaMinB}.ttf
  /usr/share/fonts/truetype/cwtex/cwming.ttf
)
for f in "${FONTS[@]}"; do
  [ -f "$f" ] || { echo "missing font $f: apt-get install fonts-noto-cjk fonts-noto-cjk-extra fonts-wqy-zenhei fonts-wqy-microhei fonts-arphic-uming fonts-arphic-ukai fonts-droid-fallback fonts-ipafont-gothic fonts-ipaexfont-mincho fonts-vlgothic fonts-takao-mincho fonts-hanazono fonts-cwtex-ming" >&2; exit 1; }
done
