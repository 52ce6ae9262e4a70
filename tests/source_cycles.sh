#!/usr/bin/env bash
# Prints every circle of calls between source files (from the objects in the
# build folder $1), nothing when the files' calls form a tree of layers. An
# edge runs from a file to each file that defines a symbol it needs. The
# generated scanner and parser call back into parse.c, their driver: the
# three count as one file.
set -euo pipefail
cd "$1/obj"
objs=$(find runtime tools compiler gen -name '*.o' ! -name main.o ! -name smelt_rt.o | sort)
unit() { sed 's#gen/lex.yy.o#compiler/parse.o#; s#gen/smelt.tab.o#compiler/parse.o#'; }
for o in $objs; do nm --defined-only -g "$o" | awk -v f="$o" 'NF == 3 {print $3, f}'; done | unit | sort -k1,1 > /tmp/smelt-defs.$$
for o in $objs; do nm -u "$o" | awk -v f="$o" '{print $2, f}'; done | unit | sort -k1,1 > /tmp/smelt-uses.$$
join /tmp/smelt-defs.$$ /tmp/smelt-uses.$$ | awk '$2 != $3 {print $3, $2}' | sort -u > /tmp/smelt-edges.$$
rm -f /tmp/smelt-defs.$$ /tmp/smelt-uses.$$
tsort /tmp/smelt-edges.$$ 2>&1 >/dev/null | grep -v "^tsort: /tmp" || true
rm -f /tmp/smelt-edges.$$
