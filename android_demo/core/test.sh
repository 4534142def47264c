#!/usr/bin/env bash
# Compile android_demo/core and its JUnit 4 tests with kotlinc, then run them on the JVM.
#
# Usage: android_demo/core/test.sh [BUILD_DIR]
#   BUILD_DIR keeps the compiled jar; it is reused while no .kt file is newer (kotlinc is slow).
# Environment (all optional):
#   EDGECNN_GOLDEN      golden vectors   (default: tests/golden/detect_golden.json)
#   EDGECNN_TINY_MODEL  tiny .tflite     (default: tests/golden/tiny_detect.tflite)
#   EDGECNN_TINY_JSON   what it holds    (default: tests/golden/tiny_detect.json)
#   EDGECNN_TRACK_GOLDEN  tracker vectors (default: tests/golden/track_golden.json)
#   EDGECNN_DECODERS_GOLDEN  foreign layouts' vectors (default: tests/golden/decoders_golden.json)
#   JUNIT_JAR, HAMCREST_JAR              (default: Debian's junit4 / hamcrest paths)
# Needs: kotlinc (Debian package `kotlin`, 1.3 is enough) and a JDK (8..17 tested with 17).
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
BUILD="${1:-}"
if [ -z "$BUILD" ]; then
    BUILD="$(mktemp -d)"
    trap 'rm -rf "$BUILD"' EXIT
fi
mkdir -p "$BUILD"

JUNIT="${JUNIT_JAR:-/usr/share/java/junit4.jar}"
HAMCREST="${HAMCREST_JAR:-/usr/share/java/hamcrest-core.jar}"
GOLDEN="${EDGECNN_GOLDEN:-$ROOT/tests/golden/detect_golden.json}"
TINY_MODEL="${EDGECNN_TINY_MODEL:-$ROOT/tests/golden/tiny_detect.tflite}"
TINY_JSON="${EDGECNN_TINY_JSON:-$ROOT/tests/golden/tiny_detect.json}"
TRACK_GOLDEN="${EDGECNN_TRACK_GOLDEN:-$ROOT/tests/golden/track_golden.json}"
DECODERS_GOLDEN="${EDGECNN_DECODERS_GOLDEN:-$ROOT/tests/golden/decoders_golden.json}"

for f in "$JUNIT" "$HAMCREST" "$GOLDEN" "$TINY_MODEL" "$TINY_JSON" "$TRACK_GOLDEN" "$DECODERS_GOLDEN"; do
    if [ ! -f "$f" ]; then echo "test.sh: missing $f" >&2; exit 2; fi
done
command -v kotlinc >/dev/null || { echo "test.sh: kotlinc not found (apt-get install kotlin)" >&2; exit 2; }

JAR="$BUILD/core-tests.jar"
if [ ! -f "$JAR" ] || [ -n "$(find "$HERE/src" -name '*.kt' -newer "$JAR" -print -quit)" ]; then
    # -include-runtime bundles the Kotlin stdlib, so `java` alone runs the tests;
    # -jvm-target 1.8 because kotlinc 1.3 defaults to Java 6 bytecode.
    kotlinc -jvm-target 1.8 -include-runtime -nowarn \
        -cp "$JUNIT:$HAMCREST" -d "$JAR.tmp.jar" "$HERE/src/main/kotlin" "$HERE/src/test/kotlin" \
        2> >(grep -v -e 'Xverify:none' -e 'noverify' >&2)
    mv "$JAR.tmp.jar" "$JAR"
fi

exec java -Dedgecnn.golden="$GOLDEN" -Dedgecnn.tinyModel="$TINY_MODEL" -Dedgecnn.tinyJson="$TINY_JSON" \
    -Dedgecnn.trackGolden="$TRACK_GOLDEN" -Dedgecnn.decodersGolden="$DECODERS_GOLDEN" \
    -cp "$JAR:$JUNIT:$HAMCREST" org.edgecnn.core.RunTests
