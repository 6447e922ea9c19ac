#if canImport(Glibc)
import Glibc
#endif
import Testing
import StrataSystem
import StrataTestSupport

/// An image built with umoci, and a strata mount of it with an upper directory. Everything
/// lives in one TempDirectory, which unmounts whatever is left mounted when it goes.
final class UpperFixture {
    let temp: TempDirectory
    let layout: String
    let cache: String
    let upper: String
    let mountpoint: String
    var guardian: MountGuard?

    /// The image: files, a hardlink pair, a symlink, xattrs, owners, a setgid directory, a
    /// 3 MB file, a directory tree (d/e/f) and a second layer that deletes and adds.
    /// `extraLower` is more shell run in the first layer's rootfs.
    init(extraLower: String = "") throws {
        temp = try TempDirectory(prefix: "strata-test-upper-")
        layout = temp.child("img")
        cache = temp.child("cache")
        upper = temp.child("upper")
        mountpoint = temp.child("mnt")
        let bundle = temp.child("bundle")
        try Umoci.initLayout(layout)
        try Umoci.newImage(layout: layout, tag: "t")
        try Umoci.unpack(layout: layout, tag: "t", into: bundle)
        try sh("""
        cd '\(bundle)/rootfs'
        mkdir -p etc/sub d/e/g sg home/u keep/x
        printf hello > etc/hosts; ln etc/hosts etc/hosts2; ln -s hosts etc/link
        setfattr -n user.k -v v etc/hosts
        printf f > d/e/f; printf g > d/e/g/h; printf k > keep/x/y
        head -c 3000000 /dev/urandom > big
        printf u > home/u/file; chown -R 1000:1000 home/u; chmod 0640 home/u/file
        chgrp 50 sg; chmod 2775 sg
        touch -d @1000000000 etc/hosts d/e/f
        \(extraLower)
        """)
        try Umoci.repack(layout: layout, tag: "t", bundle: bundle)
        try sh("cd '\(bundle)/rootfs' && rm -rf keep/x && printf second > second")
        try Umoci.repack(layout: layout, tag: "t", bundle: bundle)
        try Umoci.removeBundle(bundle)
    }

    func mount(upper: String? = nil, extra: [String] = [], environment: [String: String] = [:]) throws {
        guardian = try MountGuard(image: "\(layout):t", mountpoint: mountpoint,
                                  extraArgs: ["--cache", cache, "--upper", upper ?? self.upper] + extra,
                                  environment: environment)
    }

    func unmount() throws {
        try guardian?.unmount()
        guardian = nil
    }

    /// The tree umoci extracts from the image (the reference lower).
    func extract(_ name: String) throws -> String {
        let bundle = temp.child(name)
        return try Umoci.unpack(layout: layout, tag: "t", into: bundle)
    }

    func path(_ p: String) -> String { mountpoint + "/" + p }

    /// Mounts kernel overlayfs over the umoci-extracted lower and this fixture's upper (strata
    /// unmounted), hands `body` its mountpoint, and unmounts it again.
    func withKernelOverlay<T>(_ body: (String) throws -> T) throws -> T {
        let lower = try extract("lower")
        let overlay = temp.child("ovl"), work = temp.child("ovlwork")
        try FileIO.makeDirectories(overlay); try FileIO.makeDirectories(work)
        try sh("mount -t overlay overlay -o lowerdir='\(lower)',upperdir='\(upper)',workdir='\(work)',redirect_dir=on '\(overlay)'")
        defer { try? Mounts.forceUnmount(overlay) }
        return try body(overlay)
    }

    /// The differences between the strata mount of this upper and kernel overlayfs over the
    /// same lower and upper (directory mtimes and link counts aside); both are unmounted after.
    func differencesFromKernelOverlay() throws -> [String] {
        let kernel = try withKernelOverlay { try TreeSnapshot.capture(root: $0) }
        try mount()
        let strata = try TreeSnapshot.capture(root: mountpoint)
        try unmount()
        return strata.differences(from: kernel, ignoring: [.dirMtime, .dirNlink])
    }

    @discardableResult
    func sh(_ script: String) throws -> String {
        let r = try Command.run("/bin/sh", ["-ec", script], timeout: 300)
        guard r.succeeded else { throw HarnessError("script failed (\(r.status)): \(script)\n\(r.stderr)") }
        return r.stdoutString
    }

    /// Runs a script in the mount; returns stdout.
    @discardableResult
    func run(_ script: String) throws -> String {
        try sh("cd '\(mountpoint)'\n" + script)
    }

    deinit {
        try? guardian?.unmount()
    }
}

func statOf(_ path: String) -> stat? {
    var st = stat()
    return lstat(path, &st) == 0 ? st : nil
}

func readText(_ path: String) -> String? {
    (try? FileIO.readAll(path)).map { String(decoding: $0, as: UTF8.self) }
}
