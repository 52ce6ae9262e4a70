#!/usr/bin/env bash
# Installs smelt into a temporary DESTDIR and uses it as a user would: a C
# program compiled and linked with pkg-config's flags against the installed
# libsmeltrt runs an ingot that the installed smelt built; the installed smelt
# checks a model that imports "nn" from another folder, with the source tree's
# stdlib out of reach; make uninstall then leaves no file behind.
#
# Run by `make install-check` (part of make test), from the source root.
set -euo pipefail

MAKE=${MAKE:-make}
PREFIX=/usr/local
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dest=$tmp/dest
root=$dest$PREFIX
fail() { echo "install-check: $*" >&2; exit 1; }

command -v pkg-config >/dev/null || fail "pkg-config not found (scripts/deps.sh installs pkgconf)"

$MAKE --no-print-directory -s install DESTDIR="$dest" PREFIX=$PREFIX
for f in bin/smelt bin/smelt-rt lib/libsmeltrt.a lib/libsmeltrt.so include/smelt.h lib/pkgconfig/smelt.pc \
         share/smelt/stdlib/nn.smelt share/man/man1/smelt.1 share/man/man1/smelt-rt.1 \
         share/bash-completion/completions/smelt; do
  [ -e "$root/$f" ] || fail "make install did not write $PREFIX/$f"
done
# Versioned names of the shared library stay links, as in the build.
for f in build/libsmeltrt.so*; do
  if [ -L "$f" ]; then [ -L "$root/lib/${f##*/}" ] || fail "lib/${f##*/} is not a link in the install"; fi
done

# Everything below runs from elsewhere, with no import path but the install's.
unset SMELT_PATH SMELT_STDLIB
export NO_COLOR=1
work=$tmp/work
mkdir -p "$work"
src=$PWD
cd "$work"

# The stdlib is the installed one: a missing import's error names the folder
# looked in, which must be the install's, not the source tree's fallback.
printf 'import "no_such_module"\n' > missing.smelt
if "$root/bin/smelt" check missing.smelt > missing.err 2>&1; then fail "a missing import was accepted"; fi
grep -qF "in ., $root/share/smelt/stdlib)" missing.err ||
  fail "the installed smelt does not search its installed stdlib: $(cat missing.err)"
cat > uses_nn.smelt <<'MODEL'
import "nn"

model tiny(B = 2) {
    input x: f32[B, 8]
    input y: i32[B]
    output logits = linear(relu(linear(x, 16) as fc1), 4) as fc2
    loss cross_entropy(logits, y)
}
MODEL
"$root/bin/smelt" check uses_nn.smelt || fail "the installed smelt could not check a model importing nn"

# A program built against the installed library, as the README shows.
export PKG_CONFIG_PATH=$root/lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=$dest
version=$(pkg-config --modversion smelt)
[ "$version" = "$("$root/bin/smelt" --version | cut -d' ' -f2)" ] || fail "smelt.pc's version $version is not smelt's"
cat > app.c <<'APP'
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <smelt.h>

int main(int argc, char **argv) {
  smelt_ingot *ig;
  smelt_session *s;
  if (argc != 2) return 2;
  if (smelt_ingot_open(argv[1], &ig) != SMELT_OK || smelt_session_new(ig, "cpu", 1, &s) != SMELT_OK) {
    fprintf(stderr, "app: %s\n", smelt_last_error());
    return 1;
  }
  static float x[784], logits[10];
  for (int i = 0; i < 784; i++) x[i] = (float)(i % 13) / 13.0f;
  if (smelt_set_input(s, "infer", "x", x, sizeof x) != SMELT_OK || smelt_run(s, "infer", 1, 0) != SMELT_OK ||
      smelt_get_output(s, "infer", "logits", logits, sizeof logits) != SMELT_OK) {
    fprintf(stderr, "app: %s\n", smelt_last_error());
    return 1;
  }
  int distinct = 0;
  for (int i = 0; i < 10; i++) {
    if (!isfinite(logits[i])) return 1;
    if (i && logits[i] != logits[0]) distinct = 1;
  }
  printf("%s", smelt_version());
  for (int i = 0; i < 10; i++) printf(" %.4f", logits[i]);
  printf("\n");
  smelt_session_free(s);
  smelt_ingot_close(ig);
  return distinct ? 0 : 1;
}
APP
# shellcheck disable=SC2046  # pkg-config's output is words
cc -std=c11 -Wall -Wextra -Werror -o app app.c $(pkg-config --cflags --libs smelt) -Wl,-rpath,"$root/lib"
# ldd's output is taken whole first: under pipefail, grep -q leaving early
# would fail the pipeline with ldd's SIGPIPE although the line matched.
linked=$(ldd ./app)
grep -q "libsmeltrt.so.* => $root/lib/" <<<"$linked" || fail "app is not linked against the installed library: $linked"
"$root/bin/smelt" build "$src/examples/mlp.smelt" --entry=infer -D B=1 -o mlp.ingot > build.log ||
  fail "the installed smelt could not build examples/mlp.smelt: $(cat build.log)"
out=$(./app mlp.ingot) || fail "app failed to run the ingot: $out"
[ "${out%% *}" = "$version" ] || fail "the installed library says version ${out%% *}, smelt.pc $version"
echo "install-check: app ran mlp.ingot on the installed libsmeltrt: $out"

cd "$src"
$MAKE --no-print-directory -s uninstall DESTDIR="$dest" PREFIX=$PREFIX
left=$(find "$dest" ! -type d)
[ -z "$left" ] || fail "make uninstall left files behind: $left"
echo "install-check: install, pkg-config link, installed stdlib and uninstall work"
