#!/usr/bin/env python3
"""Shared-library closure of a binary for a machine without Debian's FFmpeg: every library it
needs, except glibc's own, copied; the heavy optional codec/format libraries replaced by stubs
that define the symbols the rest import (never called by aniprint: it decodes audio only)."""
import os, re, subprocess, sys
binary, out = sys.argv[1], sys.argv[2]
STUB = re.compile(r"lib(x265|codec2|SvtAv1Enc|aom|rav1e|jxl|jxl_threads|vpx|xml2|rsvg-2|zvbi|x264|openjp2|webp|webpmux|dav1d|gsm|shine|snappy|theoraenc|theoradec|twolame|chromaprint|bluray|srt-gnutls|ssh-gcrypt|rabbitmq|zmq|aribb24)\.so")
SKIP = re.compile(r"^(libcuda|libnvrtc|libcurand|libcublas|libcublasLt|libcudart|libc|libm|libdl|libpthread|librt|ld-linux-x86-64|libgcc_s|libstdc\+\+|libz)\.so")
paths = {}
for line in subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout.splitlines():
    m = re.match(r"\s+(\S+) \(libc6,x86-64.*\) => (\S+)", line)
    if m: paths.setdefault(m.group(1), m.group(2))
def needed(f):
    d = subprocess.run(["readelf", "-d", f], capture_output=True, text=True).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", d)
keep, stub, todo = {}, {}, list(needed(binary))
while todo:
    n = todo.pop()
    if n in keep or n in stub or SKIP.match(n): continue
    if STUB.match(n): stub[n] = paths[n]; continue
    keep[n] = paths[n]; todo += needed(paths[n])
users = [binary] + list(keep.values())
imported = {}
for u in users:
    for line in subprocess.run(["objdump", "-T", u], capture_output=True, text=True).stdout.splitlines():
        p = line.split()
        if len(p) >= 4 and "*UND*" in line:
            imported.setdefault(p[-1], set()).add(p[-2] if p[-2].startswith(("(", "LIB", "VPX", "XML", "GNUTLS", "X")) or "_" in p[-2] else "")
os.makedirs(out, exist_ok=True)
import shutil
for n, p in keep.items(): shutil.copy(p, os.path.join(out, n))
for n, p in stub.items():
    funcs, objs, vers, seen = [], [], {}, set()
    for line in subprocess.run(["objdump", "-T", p], capture_output=True, text=True).stdout.splitlines():
        m = re.match(r"[0-9a-f]+ g\s+(\w*)\s+(\S+)\s+\.\S+\s+([0-9a-f]+)\s+(\(?[\w.@]*\)?)\s+(\S+)$", line.replace("DF", "D F").replace("DO", "D O"))
        p2 = line.split()
        if "*UND*" in line or len(p2) < 5: continue
        sym = p2[-1]; hidden = p2[-2].startswith("("); ver = p2[-2].strip("()")
        if sym not in imported or hidden or sym in seen: continue
        seen.add(sym)
        kind = "F" if " DF " in line or "F .text" in line else "O"
        size = int(p2[-3], 16) if re.fullmatch(r"[0-9a-f]+", p2[-3]) else 8
        (funcs if kind == "F" else objs).append((sym, max(size, 8)))
        if ver and not ver.startswith("Base") and ver != sym: vers.setdefault(ver, []).append(sym)
    c = os.path.join("/tmp", n + ".c")
    with open(c, "w") as f:
        for s, _ in funcs: f.write(f"void {s}(void) {{}}\n")
        for s, z in objs: f.write(f"char {s}[{z}];\n")
    args = ["gcc", "-shared", "-fPIC", "-w", "-o", os.path.join(out, n), c, f"-Wl,-soname,{n}"]
    if vers:
        vs = os.path.join("/tmp", n + ".map")
        with open(vs, "w") as f:
            for v, syms in vers.items(): f.write(f"{v} {{ global: {'; '.join(syms)}; }};\n")
        args.append(f"-Wl,--version-script={vs}")
    subprocess.run(args, check=True)
    print("stub", n, len(funcs), "functions", len(objs), "objects", len(vers), "versions")
print(len(keep), "copied,", len(stub), "stubbed")
