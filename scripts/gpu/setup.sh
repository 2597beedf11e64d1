# Sourced by the scripts that run on the GPU machine: the Vulkan loader from
# .gl/, the CUDA libraries cubecl loads at run time, and the trainer binary
# carried compressed in .dev/metricann.xz, unpacked to $BIN.
BIN=/tmp/metricann
log() { echo "[$(date +%T)] $*" | tee -a "$OUT/log"; }

for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
  [ -d "$d" ] && export LD_LIBRARY_PATH=$d:${LD_LIBRARY_PATH:-}
done
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -f "$icd" ] && export VK_DRIVER_FILES=$icd
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee -a "$OUT/log"
[ -x "$BIN" ] || { python3 -c "import lzma, shutil; shutil.copyfileobj(lzma.open('.dev/metricann.xz'), open('$BIN', 'wb'))" && chmod +x "$BIN"; }
