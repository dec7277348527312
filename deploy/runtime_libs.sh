#!/bin/sh
# Copy into DEST every shared library the given binaries load (their ldd
# closure), except glibc's own, which the runtime base image provides and
# which must match its loader. The image's runtime stage puts DEST on the
# loader's path: the binaries then need nothing else from apt (OpenCV's
# Debian packages alone would pull in 600 MB of GDAL, Mesa/LLVM and codecs
# m3serve never calls; only the libraries really loaded are copied).
#   deploy/runtime_libs.sh DEST BINARY...
set -eu
dest=$1
shift
mkdir -p "$dest"
missing=$(ldd "$@" | grep "not found" || true)
if [ -n "$missing" ]; then
  echo "runtime_libs: libraries not found:" >&2
  echo "$missing" >&2
  exit 1
fi
ldd "$@" | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u | while read -r lib; do
  case "$(basename "$lib")" in
    ld-linux*|libc.so.*|libm.so.*|libpthread.so.*|libdl.so.*|librt.so.*|libresolv.so.*|libutil.so.*|libanl.so.*) ;;
    *) cp -L "$lib" "$dest/" ;;
  esac
done
echo "runtime_libs: $(ls "$dest" | wc -l) libraries, $(du -sh "$dest" | cut -f1) in $dest"
