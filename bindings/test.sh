#!/usr/bin/env bash
# Tests the uniffi bindings of seedling-ffi and does its own set-up:
#
# 1. builds libseedling_ffi.so, uniffi-bindgen and the server with
#    scripts/build (nothing to do after scripts/test's build; the server
#    is $SEEDLING_BIN when that names one);
# 2. generates the Python bindings with the crate's own uniffi-bindgen
#    (library mode) and runs bindings/tests/test_bindings.py with
#    `python3 -m unittest` (standard library only): a phone synced through
#    the bindings against a real `seedling serve --demo` on SQLite, and the
#    clock and due-date functions against sync-core's vectors;
# 3. generates the Kotlin and Swift bindings and checks that each file
#    exists, is not empty and declares the API (bindings/api.txt);
# 4. compiles the Kotlin bindings with kotlinc against JNA when a kotlinc
#    of version 1.6 or later is on the PATH. Debian 12 packages only
#    kotlin 1.3.31, which cannot compile what uniffi 0.32 generates, and
#    no Swift compiler; the script says so in its output instead of
#    failing. Set SEEDLING_REQUIRE_KOTLINC=1 to make a missing kotlinc fail.
#
# Every step that runs must pass; nothing is skipped without a line saying so.
set -euo pipefail
cd "$(dirname "$0")/.."

target="${CARGO_TARGET_DIR:-$PWD/target}"
out="$(mktemp -d "${TMPDIR:-/tmp}/seedling-ffi-bindings.XXXXXX")"
trap 'rm -rf "$out"' EXIT

echo "== bindings: the library, its generator and the server (scripts/build)"
scripts/build
lib="$target/debug/libseedling_ffi.so"
bindgen="$target/debug/uniffi-bindgen"
export SEEDLING_BIN="${SEEDLING_BIN:-$target/debug/seedling}"

for language in python kotlin swift; do
  "$bindgen" generate --library "$lib" --language "$language" --out-dir "$out/$language" >/dev/null
done

echo "== bindings: the generated files declare the API (bindings/api.txt)"
python_file="$out/python/seedling_ffi.py"
kotlin_file="$(find "$out/kotlin" -name '*.kt' | head -n 1)"
swift_file="$out/swift/seedling_ffi.swift"
for f in "$python_file" "$kotlin_file" "$swift_file" "$out/swift/seedling_ffiFFI.h" "$out/swift/seedling_ffiFFI.modulemap"; do
  [ -s "$f" ] || { echo "missing or empty: ${f#"$out"/}" >&2; exit 1; }
done
missing=0
while read -r language name; do
  case "$language" in ''|'#'*) continue ;; esac
  case "$language" in
    python) file="$python_file" ;;
    kotlin) file="$kotlin_file" ;;
    swift) file="$swift_file" ;;
    *) echo "bindings/api.txt: unknown language $language" >&2; exit 1 ;;
  esac
  grep -qwF -- "$name" "$file" || { echo "$language bindings lack $name" >&2; missing=1; }
done < bindings/api.txt
[ "$missing" = 0 ]
echo "python, kotlin and swift bindings: $(grep -cv '^\s*\(#\|$\)' bindings/api.txt) declarations found"

echo "== bindings: python3 -m unittest (a phone against seedling serve --demo)"
cp "$lib" "$out/python/"
SEEDLING_FFI_PY="$out/python" python3 -m unittest -v bindings/tests/test_bindings.py

echo "== bindings: kotlinc"
kotlin_version() { kotlinc -version 2>&1 | sed -n 's/.*kotlinc-jvm \([0-9][0-9]*\)\.\([0-9][0-9]*\).*/\1 \2/p'; }
jna="$(ls /usr/share/java/jna.jar 2>/dev/null || true)"
if command -v kotlinc >/dev/null && read -r major minor < <(kotlin_version) &&
   { [ "$major" -gt 1 ] || [ "$minor" -ge 6 ]; } && [ -n "$jna" ]; then
  kotlinc "$kotlin_file" -classpath "$jna" -d "$out/kotlin.jar"
  [ -s "$out/kotlin.jar" ]
  echo "the Kotlin bindings compile (kotlinc $major.$minor, JNA $jna)"
elif [ "${SEEDLING_REQUIRE_KOTLINC:-0}" = 1 ]; then
  echo "no kotlinc >= 1.6 with JNA (/usr/share/java/jna.jar) here, and SEEDLING_REQUIRE_KOTLINC=1" >&2
  exit 1
else
  echo "NOT COMPILED: no kotlinc >= 1.6 with JNA on this machine (Debian 12 has kotlin 1.3.31);"
  echo "the Kotlin bindings were generated and checked against bindings/api.txt only"
fi
echo "NOT COMPILED: no Swift compiler is packaged for this machine (Debian 12);"
echo "the Swift bindings were generated and checked against bindings/api.txt only"
