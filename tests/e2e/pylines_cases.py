"""Prints line-table cases from this interpreter's own code objects.

Run by test_pylines.py under each CPython available: for every code object
of a few standard modules, one line per code object for pylines_driver:
FORMAT FIRSTLINENO HEXTABLE OFFSET..., and on stdout after "EXPECT" the
lines this interpreter itself gives for those offsets.
"""

import dis
import sys
import types


def code_objects(code):
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from code_objects(const)


def cases(code):
    v = sys.version_info[:2]
    if v >= (3, 10):
        # co_lines(): (start, end, line) in bytes; line None: no line.
        ranges = [(s, e, -1 if l is None else l) for s, e, l in code.co_lines()]
        offsets, expect = [], []
        for s, e, l in ranges:
            for b in range(s, e, 2):
                offsets.append(b // 2 if v >= (3, 11) else b)
                expect.append(l)
        fmt = "311" if v >= (3, 11) else "310"
        table = code.co_linetable
    else:
        starts = list(dis.findlinestarts(code))
        offsets = list(range(0, len(code.co_code), 2))
        expect = []
        for off in offsets:
            line = code.co_firstlineno
            for s, l in starts:
                if s <= off:
                    line = l
            expect.append(line)
        fmt = "lnotab"
        table = code.co_lnotab
    return fmt, code.co_firstlineno, table.hex() or "-", offsets, expect


def main():
    import json.decoder
    import textwrap
    import argparse
    import asyncio.base_events
    inputs, expects = [], []
    for module in (json.decoder, textwrap, argparse, asyncio.base_events):
        with open(module.__file__, encoding="utf-8") as f:
            top = compile(f.read(), module.__file__, "exec")
        for code in code_objects(top):
            fmt, first, table, offsets, expect = cases(code)
            if not offsets:
                continue
            inputs.append(f"{fmt} {first} {table} " +
                          " ".join(map(str, offsets)))
            expects.append(" ".join(map(str, expect)))
    print("\n".join(inputs))
    print("EXPECT")
    print("\n".join(expects))


main()
