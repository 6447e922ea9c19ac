#!/usr/bin/env python3
"""Small helpers for scripts/bench (stdlib only).

  layout.py blobs REF               the layer blobs of REF (DIR:TAG), bottom layer first
  layout.py whiteouts DIR           turns OCI whiteouts in an extracted layer into overlayfs'
                                    format: .wh.NAME -> NAME as a 0/0 character device,
                                    .wh..wh..opq -> trusted.overlay.opaque=y on its directory
  layout.py spec KEY REF EXTRACTED  one "KEY": {...} JSON member describing the image for bench.py
"""
import json
import os
import sys


def blobs(ref):
    layout, tag = ref.rsplit(":", 1)

    def blob(digest):
        algo, hexd = digest.split(":", 1)
        return os.path.join(layout, "blobs", algo, hexd)

    with open(os.path.join(layout, "index.json")) as f:
        index = json.load(f)
    for m in index["manifests"]:
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag:
            with open(blob(m["digest"])) as f:
                manifest = json.load(f)
            return [blob(l["digest"]) for l in manifest["layers"]]
    raise SystemExit(f"layout.py: no tag {tag} in {layout}")


def whiteouts(root):
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames:
            if not name.startswith(".wh."):
                continue
            path = os.path.join(dirpath, name)
            os.unlink(path)
            if name == ".wh..wh..opq":
                os.setxattr(dirpath, "trusted.overlay.opaque", b"y")
            else:
                target = os.path.join(dirpath, name[4:])
                if os.path.lexists(target):
                    continue
                os.mknod(target, 0o600 | 0o020000, os.makedev(0, 0))


def spec(key, ref, extracted):
    b = blobs(ref)
    layers = [os.path.join(extracted, str(i + 1)) for i in range(len(b))]
    info = {"ref": ref, "blobs": b, "layers": layers, "native": os.path.join(extracted, "bundle", "rootfs")}
    print(json.dumps(key) + ": " + json.dumps(info))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "blobs":
        print("\n".join(blobs(sys.argv[2])))
    elif cmd == "whiteouts":
        whiteouts(sys.argv[2])
    elif cmd == "spec":
        spec(*sys.argv[2:5])
    else:
        raise SystemExit(__doc__)
