#if canImport(Glibc)
import Glibc
#endif
import StrataSystem

/// A small runnable image built in code with umoci from the host's static busybox
/// (Debian's busybox-static): /bin/busybox with applet links, /etc/passwd and /etc/group
/// with a few users, the mount points a runtime needs (/proc, /dev, /sys, /tmp), and
/// /bin/busybox-cap, a busybox copy carrying `security.capability` (cap_net_bind_service+ep).
public enum BusyboxImage {
    public static let busybox = "/bin/busybox"
    public static let applets = ["sh", "id", "cat", "echo", "ls", "grep", "touch", "sleep", "test", "mkdir", "rm", "hostname"]
    public static let passwd = """
        root:x:0:0:root:/root:/bin/sh
        app:x:1000:1000:App:/home/app:/bin/sh
        svc:x:1001:1001::/tmp:/bin/sh

        """
    public static let group = """
        root:x:0:
        app:x:1000:
        svc:x:1001:
        staff:x:2000:app,svc
        audio:x:2001:app

        """

    /// Static busybox, umoci and setcap present (the tests that need them skip otherwise).
    public static var isAvailable: Bool {
        access(busybox, X_OK) == 0 && Umoci.isAvailable && access(Mounts.tool("setcap"), X_OK) == 0
            && isStatic(busybox)
    }

    /// Makes LAYOUT:TAG. `config` holds `umoci config` arguments (e.g. ["--config.cmd", "id"]);
    /// `customize` may add files to the rootfs before it is packed.
    @discardableResult
    public static func make(layout: String, tag: String = "latest", config: [String] = [],
                            customize: (String) throws -> Void = { _ in }) throws -> String {
        let work = try TempDirectory(prefix: "strata-busybox-")
        defer { withExtendedLifetime(work) {} }
        if !FileIO.exists(layout + "/oci-layout") { try Umoci.initLayout(layout) }
        try Umoci.newImage(layout: layout, tag: tag)
        let bundle = work.child("bundle")
        let rootfs = try Umoci.unpack(layout: layout, tag: tag, into: bundle)
        for dir in ["bin", "etc", "proc", "dev", "sys", "tmp", "root", "home/app"] {
            try FileIO.makeDirectories(rootfs + "/" + dir)
        }
        chmod(rootfs + "/tmp", 0o1777)
        _ = chown(rootfs + "/home/app", 1000, 1000)
        try Command.check("/bin/cp", [busybox, rootfs + "/bin/busybox"])
        for applet in applets where symlink("busybox", rootfs + "/bin/" + applet) != 0 {
            throw SystemError(code: errno, operation: "symlink", path: rootfs + "/bin/" + applet)
        }
        try Command.check("/bin/cp", [busybox, rootfs + "/bin/busybox-cap"])
        try Command.check(Mounts.tool("setcap"), ["cap_net_bind_service+ep", rootfs + "/bin/busybox-cap"])
        try FileIO.writeAtomically(rootfs + "/etc/passwd", Array(passwd.utf8))
        try FileIO.writeAtomically(rootfs + "/etc/group", Array(group.utf8))
        try FileIO.writeAtomically(rootfs + "/etc/hello", Array("hello from the image\n".utf8))
        try customize(rootfs)
        try Umoci.repack(layout: layout, tag: tag, bundle: bundle)
        if !config.isEmpty { try Umoci.config(layout: layout, tag: tag, config) }
        try Umoci.removeBundle(bundle)
        return "\(layout):\(tag)"
    }

    /// `umoci config` arguments for a command: one --config.cmd per word, entrypoint cleared.
    public static func command(_ words: [String]) -> [String] {
        ["--clear=config.entrypoint", "--clear=config.cmd"] + words.flatMap { ["--config.cmd", $0] }
    }

    static func isStatic(_ path: String) -> Bool {
        guard let bytes = try? FileIO.readAll(path), bytes.count > 64 else { return false }
        // No PT_INTERP program header: scan for the dynamic loader's name instead of parsing ELF.
        let needle = Array("ld-linux".utf8)
        return !bytes.prefix(8192).indices.contains { i in
            i + needle.count <= 8192 && Array(bytes[i..<(i + needle.count)]) == needle
        }
    }
}
