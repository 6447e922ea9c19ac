#!/usr/bin/env python3
"""Builds the synthetic benchmark images as OCI image layouts (Python stdlib + pigz).

  mkimage.py many  LAYOUT TAG ENTRIES   two layers, ENTRIES files and directories in all
                                        (a node_modules-like tree; the second layer replaces
                                        some packages (opaque dirs), deletes some files
                                        (whiteouts) and adds packages)
  mkimage.py tiny  LAYOUT TAG ENTRIES   one gzip layer of ENTRIES tiny files (most empty), 1000
                                        to a directory: what a layer's metadata costs, not its data
  mkimage.py big   LAYOUT TAG BYTES     one gzip layer holding one BYTES-long file of mixed
                                        random (1/4) and text-like (3/4) 1 MiB blocks

Everything is deterministic (seeded): the same arguments give the same tree. The layout is
written to LAYOUT.tmp and renamed to LAYOUT when complete.
"""
import hashlib
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tarfile

MTIME = 1700000000


class HashingPipe(io.RawIOBase):
    """A write-only file that hashes what passes (the layer's diff_id) and feeds pigz."""

    def __init__(self, out_path):
        self.sha = hashlib.sha256()
        self.size = 0
        self.out = open(out_path, "wb")
        self.proc = subprocess.Popen(["pigz", "-6", "-n", "-c"], stdin=subprocess.PIPE, stdout=self.out)

    def writable(self):
        return True

    def write(self, b):
        self.sha.update(b)
        self.size += len(b)
        self.proc.stdin.write(b)
        return len(b)

    def finish(self):
        self.proc.stdin.close()
        if self.proc.wait() != 0:
            raise SystemExit("pigz failed")
        self.out.close()
        return "sha256:" + self.sha.hexdigest()


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(8 << 20)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


class Layout:
    def __init__(self, path):
        self.path = path
        self.tmp = path + ".tmp"
        shutil.rmtree(self.tmp, ignore_errors=True)
        os.makedirs(os.path.join(self.tmp, "blobs", "sha256"))
        with open(os.path.join(self.tmp, "oci-layout"), "w") as f:
            json.dump({"imageLayoutVersion": "1.0.0"}, f)
        self.layers = []  # (descriptor, diff_id)
        self.n = 0

    def layer_writer(self):
        self.n += 1
        return HashingPipe(os.path.join(self.tmp, f"layer{self.n}.tmp"))

    def add_layer(self, pipe):
        diff_id = pipe.finish()
        path = pipe.out.name
        digest = sha256_file(path)
        size = os.path.getsize(path)
        os.rename(path, os.path.join(self.tmp, "blobs", "sha256", digest))
        self.layers.append(({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                             "digest": "sha256:" + digest, "size": size}, diff_id))

    def blob(self, obj, media_type):
        data = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
        digest = hashlib.sha256(data).hexdigest()
        with open(os.path.join(self.tmp, "blobs", "sha256", digest), "wb") as f:
            f.write(data)
        return {"mediaType": media_type, "digest": "sha256:" + digest, "size": len(data)}

    def finish(self, tag):
        config = {"architecture": "amd64", "os": "linux",
                  "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/usr/bin:/bin"]},
                  "rootfs": {"type": "layers", "diff_ids": [d for _, d in self.layers]},
                  "history": [{"created_by": "strata bench mkimage.py"} for _ in self.layers]}
        cdesc = self.blob(config, "application/vnd.oci.image.config.v1+json")
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": cdesc, "layers": [d for d, _ in self.layers]}
        mdesc = self.blob(manifest, "application/vnd.oci.image.manifest.v1+json")
        mdesc["annotations"] = {"org.opencontainers.image.ref.name": tag}
        with open(os.path.join(self.tmp, "index.json"), "w") as f:
            json.dump({"schemaVersion": 2, "manifests": [mdesc]}, f)
        shutil.rmtree(self.path, ignore_errors=True)
        os.rename(self.tmp, self.path)


def tinfo(name, kind=tarfile.REGTYPE, size=0, mode=0o644):
    t = tarfile.TarInfo(name)
    t.type = kind
    t.size = size
    t.mode = mode
    t.mtime = MTIME
    t.uid = t.gid = 1000
    t.uname = t.gname = "node"
    return t


WORDS = ("function return const let var require module exports this that value index "
         "length object string number array undefined null true false async await promise "
         "callback error options config default import from export class extends super "
         "prototype call apply bind").split()


def text_pool(rng, size):
    out = []
    n = 0
    while n < size:
        line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12))) + ";\n"
        out.append(line)
        n += len(line)
    return "".join(out).encode()[:size]


def many(layout_path, tag, entries):
    rng = random.Random(42)
    pool = text_pool(rng, 4 << 20)
    # A package: package.json, README.md, LICENSE, index.js, and lib/, dist/, test/ with files.
    per_pkg = 4 + 3 * 9 + 3 + 1  # files + 3 dirs with 9 files each + the package dir
    layer1_pkgs = max(10, int(entries * 0.67) // per_pkg)
    layer2_new = max(5, int(entries * 0.33) // per_pkg)
    replaced = max(2, layer1_pkgs // 20)

    def content(size):
        off = rng.randrange(0, len(pool) - size)
        return pool[off:off + size]

    def add_pkg(tf, base, name, count):
        d = f"{base}/{name}"
        tf.addfile(tinfo(d, tarfile.DIRTYPE, mode=0o755))
        count += 1
        for f in ("package.json", "README.md", "LICENSE", "index.js"):
            data = content(rng.randint(80, 2500))
            tf.addfile(tinfo(f"{d}/{f}", size=len(data)), io.BytesIO(data))
            count += 1
        for sub in ("lib", "dist", "test"):
            tf.addfile(tinfo(f"{d}/{sub}", tarfile.DIRTYPE, mode=0o755))
            count += 1
            for i in range(9):
                data = content(rng.randint(60, 3000))
                tf.addfile(tinfo(f"{d}/{sub}/f{i}.js", size=len(data)), io.BytesIO(data))
                count += 1
        return count

    lay = Layout(layout_path)
    total = 0
    # Layer 1
    pipe = lay.layer_writer()
    with tarfile.open(fileobj=pipe, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        for d in ("app", "app/node_modules"):
            tf.addfile(tinfo(d, tarfile.DIRTYPE, mode=0o755))
            total += 1
        for p in range(layer1_pkgs):
            scope = f"app/node_modules/@scope{p % 50}" if p % 3 == 0 else "app/node_modules"
            if p % 3 == 0 and p < 150:
                tf.addfile(tinfo(scope, tarfile.DIRTYPE, mode=0o755))
                total += 1
            total = add_pkg(tf, scope, f"pkg{p}", total)
    lay.add_layer(pipe)
    # Layer 2: replace some packages wholesale (opaque), delete files, add packages.
    pipe = lay.layer_writer()
    with tarfile.open(fileobj=pipe, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        replaced_set = set()
        for p in range(0, layer1_pkgs, max(1, layer1_pkgs // replaced)):
            if p % 3 == 0:
                continue
            replaced_set.add(p)
            d = f"app/node_modules/pkg{p}"
            tf.addfile(tinfo(d, tarfile.DIRTYPE, mode=0o755))
            tf.addfile(tinfo(f"{d}/.wh..wh..opq"))
            data = content(300)
            tf.addfile(tinfo(f"{d}/package.json", size=len(data)), io.BytesIO(data))
            total += 3
        for p in range(1, layer1_pkgs, 7):
            if p % 3 == 0 or p in replaced_set:
                continue
            tf.addfile(tinfo(f"app/node_modules/pkg{p}/test/.wh.f{p % 9}.js"))
            total += 1
        tf.addfile(tinfo("app/node_modules", tarfile.DIRTYPE, mode=0o755))
        for p in range(layer2_new):
            total = add_pkg(tf, "app/node_modules", f"new{p}", total)
    lay.add_layer(pipe)
    lay.finish(tag)
    print(f"many: {total} tar entries in 2 layers")


def ustar(name, typeflag, size, mode):
    """One ustar header block, built directly (tarfile takes minutes for millions of entries)."""
    h = bytearray(512)
    h[0:len(name)] = name
    h[100:108] = b"%07o\0" % mode
    h[108:116] = b"%07o\0" % 1000
    h[116:124] = b"%07o\0" % 1000
    h[124:136] = b"%011o\0" % size
    h[136:148] = b"%011o\0" % MTIME
    h[148:156] = b"        "
    h[156] = typeflag
    h[257:265] = b"ustar\x0000"
    h[265:269] = b"node"
    h[297:301] = b"node"
    h[148:156] = b"%06o\0 " % sum(h)
    return bytes(h)


def tiny(layout_path, tag, entries):
    lay = Layout(layout_path)
    pipe = lay.layer_writer()
    out = io.BufferedWriter(pipe, 1 << 20)
    out.write(ustar(b"files/", ord("5"), 0, 0o755))
    n, d = 1, 0
    while n < entries:
        out.write(ustar(b"files/d%05d/" % d, ord("5"), 0, 0o755))
        n += 1
        for f in range(min(999, entries - n)):
            size = (d * 7 + f) % 16 if f % 8 == 0 else 0
            block = b"%x\n" % f
            data = (block * 8)[:size]
            out.write(ustar(b"files/d%05d/file-%05d.txt" % (d, f), ord("0"), size, 0o644))
            if size:
                out.write(data + bytes(512 - size))
            n += 1
        d += 1
    out.write(bytes(1024))
    out.flush()
    lay.add_layer(pipe)
    lay.finish(tag)
    print(f"tiny: {n} tar entries in one layer")


def big(layout_path, tag, size):
    rng = random.Random(7)
    pool = text_pool(rng, 8 << 20)
    block = 1 << 20
    lay = Layout(layout_path)
    pipe = lay.layer_writer()
    # Random blocks come from AES-CTR over zeros: deterministic and fast.
    rnd = subprocess.Popen(["openssl", "enc", "-aes-128-ctr", "-nosalt", "-K", "00" * 16,
                            "-iv", "00" * 16, "-in", "/dev/zero"], stdout=subprocess.PIPE)
    with tarfile.open(fileobj=pipe, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        tf.addfile(tinfo("data", tarfile.DIRTYPE, mode=0o755))
        info = tinfo("data/big.bin", size=size)
        # tarfile wants a file object for the data: feed it a generator-backed reader.

        class Gen(io.RawIOBase):
            def __init__(self):
                self.i = 0
                self.buf = b""

            def readable(self):
                return True

            def readinto(self, b):
                while len(self.buf) < len(b) and self.i * block < size:
                    i = self.i
                    self.i += 1
                    if (i * 2654435761 >> 9) % 4 == 0:
                        chunk = rnd.stdout.read(block)
                    else:
                        off = (i * 7919 * 4099) % (len(pool) - block)
                        chunk = b"block %d\n" % i + pool[off:off + block - 32]
                        chunk = chunk + b"\n" * (block - len(chunk))
                    self.buf += chunk
                n = min(len(b), len(self.buf))
                b[:n] = self.buf[:n]
                self.buf = self.buf[n:]
                return n

        tf.addfile(info, io.BufferedReader(Gen(), 4 << 20))
    rnd.kill()
    rnd.wait()
    lay.add_layer(pipe)
    lay.finish(tag)
    print(f"big: one file of {size} bytes")


if __name__ == "__main__":
    kind, layout, tag, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    {"many": many, "tiny": tiny, "big": big}[kind](layout, tag, n)
