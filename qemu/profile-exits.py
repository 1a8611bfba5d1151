#!/usr/bin/env python3
"""Instructions executed at EL2 per guest exit, by exit kind and by function.

Reads a QEMU log made with `-d in_asm,exec,nochain -dfilter <hypervisor text>` (from a file
or a FIFO) and the hypervisor's symbols (`nm -C` output), and prints, for each kind of exit
(from the lower-EL vector entry to the `eret` back to a guest), how many there were, the
mean number of instructions per exit and where they go by function. qemu/profile.sh runs it.
A WFI exit whose vCPU waited in place for its interrupt (sched::wait_in_place) is "WFI in
place". Suffixes of a kind: "+idle" the CPU waited in WFI inside the exit, else "+switch" another
vCPU was loaded (oxen::sched::save ran); then "+migrate" the vCPU loaded had last run on
another CPU (oxen::sched::moved_in ran).

How instructions are counted: every translation block (TB) that QEMU logs with `in_asm` is
followed by its first `exec` line, which gives the block's key (pc, flags, cflags); each
later `exec` line of that key counts the block's instructions, each attributed to the
function whose symbol covers its address. With `nochain` every executed block is logged.

Usage: profile-exits.py LOG SYMS VBAR [--bias B] [--top N] [--summary FILE] [--exits N --enough FILE]
                        [--detail FUNC] [--sequence FILE]
(--detail: also print, per instruction address of the functions whose name contains FUNC,
how often it ran per exit: where the hot loop of a function is, for objdump -d)
(--sequence: also write every exit, in trace order, as "<n> cpu<c> <instructions> <kind>" to FILE:
what ran around one exit, e.g. both sides of a vCPU migration)
(--bias: added to the symbols' addresses: load address minus link address; VBAR is run-time)
(--exits: count the first N exits only, then create FILE and read the rest of the log unparsed)
"""

import bisect
import re
import sys
from collections import defaultdict

# Exit kinds of synchronous exits: the first rule whose function is seen in the exit names
# it (functions inlined into their caller are seen as the caller).
SYNC_RULES = [
    (r"^oxen::xen::evtchn::", "hypercall event_channel_op"),
    (r"^oxen::xen::schedop::", "hypercall sched_op"),
    (r"^oxen::xen::version::", "hypercall xen_version"),
    (r"^oxen::xen::grant::", "hypercall grant_table_op"),
    (r"^oxen::xen::memory::", "hypercall memory_op"),
    (r"^oxen::xen::consoleio::", "hypercall console_io"),
    (r"^oxen::xen::multicall::", "hypercall multicall"),
    (r"^oxen::xen::(domctl|sysctl)::", "hypercall domctl/sysctl"),
    (r"^oxen::xen::", "hypercall other"),
    (r"^oxen::hypercall::", "hypercall other"),
    (r"^oxen::vpsci::", "PSCI/SMCCC"),
    (r"^oxen::vgic::sgi1r", "sysreg ICC_SGI1R (IPI)"),
    (r"^oxen::vgic::mmio", "MMIO vGIC"),
    (r"^oxen::vuart::", "MMIO vUART"),
    (r"^oxen::sched::block_current", "WFI"),
    (r"^oxen::sched::wait_in_place", "WFI in place"),
    (r"^oxen::sched::yield_current", "WFE"),
    (r"^oxen::idregs::|idreg", "sysreg ID register"),
]
SYNC_RULES = [(re.compile(r), k) for r, k in SYNC_RULES]

TRACE = re.compile(r"^Trace (\d+): 0x[0-9a-f]+ \[([0-9a-f]+)/([0-9a-f]+)/([0-9a-f]+)/([0-9a-f]+)\]")
INSN = re.compile(r"^0x([0-9a-f]+):\s+[0-9a-f]{8}\s+(\S+)")


def load_symbols(path, bias):
    """(sorted starts, names) of the text symbols in `nm -C -n` output, shifted by `bias`."""
    starts, names = [], []
    hashtail = re.compile(r"::h[0-9a-f]{16}$")
    for line in open(path, encoding="utf-8", errors="replace"):
        parts = line.rstrip("\n").split(" ", 2)
        if len(parts) < 3 or parts[1] not in "tTwW":
            continue
        name = hashtail.sub("", parts[2])
        if name.startswith("$") or name.startswith(".L"):
            continue
        starts.append(int(parts[0], 16) + bias)
        names.append(name)
    order = sorted(range(len(starts)), key=lambda i: starts[i])
    return [starts[i] for i in order], [names[i] for i in order]


def main():
    args = sys.argv[1:]
    top = 12
    summary = None
    max_exits = None
    bias = 0
    detail = None
    if "--detail" in args:
        i = args.index("--detail")
        detail = args[i + 1]
        del args[i : i + 2]
    addr_counts = defaultdict(int)  # address -> executions (functions named by --detail)
    sequence = None
    if "--sequence" in args:
        i = args.index("--sequence")
        sequence = open(args[i + 1], "w", encoding="utf-8")
        del args[i : i + 2]
    if "--bias" in args:
        i = args.index("--bias")
        bias = int(args[i + 1], 0)
        del args[i : i + 2]
    enough = None
    if "--exits" in args:
        i = args.index("--exits")
        max_exits = int(args[i + 1])
        del args[i : i + 2]
    if "--enough" in args:
        i = args.index("--enough")
        enough = args[i + 1]
        del args[i : i + 2]
    if "--top" in args:
        i = args.index("--top")
        top = int(args[i + 1])
        del args[i : i + 2]
    if "--summary" in args:
        i = args.index("--summary")
        summary = args[i + 1]
        del args[i : i + 2]
    if len(args) != 3:
        sys.exit(__doc__)
    log_path, sym_path, vbar = args[0], args[1], int(args[2], 0)
    starts, names = load_symbols(sym_path, bias)
    func_cache = {}

    def func_of(addr):
        f = func_cache.get(addr)
        if f is None:
            i = bisect.bisect_right(starts, addr) - 1
            f = names[i] if i >= 0 else "?"
            func_cache[addr] = f
        return f

    entry_kind = {vbar + 0x400: "sync", vbar + 0x480: "irq", vbar + 0x500: "fiq", vbar + 0x580: "serror"}

    blocks = {}  # (pc, flags, cflags) -> (per-function counts, ends in eret, has a WFI)
    by_pc = {}  # pc -> last block seen at pc (fallback)
    pending = None  # (pc, counts, eret) of the block just translated
    cur_insns = None  # while reading an IN: block: list of (addr, mnemonic)

    # per CPU: the exit in progress [entry kind, per-function counts, waited in WFI] or None
    exits = {}
    # results: kind -> [count, total insns, per-function totals]
    kinds = defaultdict(lambda: [0, 0, defaultdict(int)])

    def finish_block(insns):
        counts = defaultdict(int)
        for a, _ in insns:
            counts[func_of(a)] += 1
        eret = bool(insns) and insns[-1][1] == "eret"
        wfi = any(m == "wfi" for _, m in insns)
        addrs = ()
        if detail:
            addrs = tuple(a for a, _ in insns if detail in func_of(a))
        return (tuple(counts.items()), eret, wfi, addrs)

    def classify(entry, funcs, idle):
        if entry != "sync":
            kind = {"irq": "interrupt"}.get(entry, entry)
        else:
            kind = "sync other"
            for rx, k in SYNC_RULES:
                if any(rx.search(f) for f in funcs):
                    kind = k
                    break
        if idle and kind != "WFI in place":
            kind += " +idle"
        elif "oxen::sched::save" in funcs:
            kind += " +switch"
        if "oxen::sched::moved_in" in funcs:
            kind += " +migrate"
        return kind

    seen = 0
    with open(log_path, encoding="utf-8", errors="replace") as log:
        for line in log:
            if cur_insns is not None:
                m = INSN.match(line)
                if m:
                    cur_insns.append((int(m.group(1), 16), m.group(2)))
                    continue
                if cur_insns:
                    pending = (cur_insns[0][0],) + finish_block(cur_insns)
                cur_insns = None
            if line.startswith("IN:"):
                cur_insns = []
                continue
            if not line.startswith("Trace "):
                continue
            m = TRACE.match(line)
            if not m:
                continue
            cpu = int(m.group(1))
            pc = int(m.group(3), 16)
            key = (pc, m.group(4), m.group(5))
            blk = blocks.get(key)
            if pending is not None and pending[0] == pc:
                blk = pending[1:]
                blocks[key] = blk
                by_pc[pc] = blk
                pending = None
            if blk is None:
                blk = by_pc.get(pc)
            entry = entry_kind.get(pc)
            if entry is not None:
                exits[cpu] = [entry, defaultdict(int), False]
            ex = exits.get(cpu)
            if ex is None or blk is None:
                continue
            for f, n in blk[0]:
                ex[1][f] += n
            ex[2] |= blk[2]
            for a in blk[3]:
                addr_counts[a] += 1
            if blk[1]:  # eret: back in a guest
                kind = classify(ex[0], ex[1], ex[2])
                k = kinds[kind]
                k[0] += 1
                k[1] += sum(ex[1].values())
                if sequence:
                    sequence.write(f"{seen} cpu{cpu} {sum(ex[1].values())} {kind}\n")
                for f, n in ex[1].items():
                    k[2][f] += n
                exits[cpu] = None
                seen += 1
                if max_exits is not None and seen >= max_exits:
                    if enough:
                        open(enough, "w").close()
                    for _ in log:
                        pass
                    break

    total_exits = sum(k[0] for k in kinds.values())
    total_insns = sum(k[1] for k in kinds.values())
    if total_exits == 0:
        print("profile: no complete guest exit in the log")
        return 1
    print(f"{total_exits} guest exits, {total_insns} instructions at EL2, "
          f"{total_insns / total_exits:.0f} per exit")
    print()
    rows = sorted(kinds.items(), key=lambda kv: -kv[1][1])
    print(f"{'exit kind':40} {'exits':>7} {'insns/exit':>10} {'share':>6}")
    for name, (n, ins, _) in rows:
        print(f"{name:40} {n:7} {ins / n:10.0f} {100 * ins / total_insns:5.1f}%")
    for name, (n, ins, funcs) in rows:
        print()
        print(f"{name}: {n} exits, {ins / n:.0f} instructions per exit")
        fs = sorted(funcs.items(), key=lambda kv: -kv[1])
        for f, c in fs[:top]:
            print(f"  {c / n:8.1f}  {f}")
        rest = sum(c for _, c in fs[top:])
        if rest:
            print(f"  {rest / n:8.1f}  ({len(fs) - top} more functions)")
    if detail:
        print()
        print(f"instructions of *{detail}* by address (run-time address - bias = ELF address), "
              "executions per exit:")
        for a, c in sorted(addr_counts.items()):
            print(f"  {a - bias:#x}  {c / total_exits:8.2f}  {func_of(a)}")
    if summary:
        with open(summary, "w", encoding="utf-8") as out:
            out.write(f"all exits={total_exits} insns_per_exit={total_insns / total_exits:.0f}\n")
            for name, (n, ins, _) in rows:
                out.write(f"{name}: exits={n} insns_per_exit={ins / n:.0f}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
