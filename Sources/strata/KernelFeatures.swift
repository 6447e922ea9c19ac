import StrataCodec
import StrataSystem
#if canImport(Glibc)
import Glibc
#endif

/// What the running kernel offers FUSE, as far as an unprivileged read can tell: the kernel
/// release, its build config (/proc/config.gz or /boot/config-RELEASE, when either is there)
/// and the fuse module's parameters. Anything it cannot tell is reported as unknown.
struct KernelFeatures {
    var release: String
    /// CONFIG_* lines of the kernel's build config; nil when no config is readable.
    var config: [String: String]?
    /// /sys/module/fuse/parameters/enable_uring: nil when the kernel has no FUSE io_uring.
    var enableUring: String?

    static func probe() -> KernelFeatures {
        var name = utsname()
        uname(&name)
        let release = withUnsafeBytes(of: &name.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        var config: [String: String]?
        if let gz = try? FileIO.readAll("/proc/config.gz"), let text = try? Gzip.decompress(gz) {
            config = parse(String(decoding: text, as: UTF8.self))
        } else if let text = try? FileIO.readAll("/boot/config-\(release)") {
            config = parse(String(decoding: text, as: UTF8.self))
        }
        let uring = (try? FileIO.readAll("/sys/module/fuse/parameters/enable_uring"))
            .map { String(decoding: $0, as: UTF8.self).trimmingWhitespace }
        return KernelFeatures(release: release, config: config, enableUring: uring)
    }

    static func parse(_ text: String) -> [String: String] {
        var values: [String: String] = [:]
        for line in text.split(separator: "\n") where line.hasPrefix("CONFIG_") {
            let parts = line.split(separator: "=", maxSplits: 1)
            if parts.count == 2 { values[String(parts[0])] = String(parts[1]) }
        }
        return values
    }

    /// (major, minor) of the release, e.g. 6.9 of "6.9.1-arch1".
    var version: (Int, Int) {
        let parts = release.split(whereSeparator: { !$0.isNumber }).prefix(2).compactMap { Int($0) }
        return (parts.first ?? 0, parts.count > 1 ? parts[1] : 0)
    }

    /// FUSE passthrough (kernel 6.9): yes, no or unknown, with the reason.
    var passthrough: String {
        let (major, minor) = version
        if (major, minor) < (6, 9) { return "no (kernel \(release) < 6.9)" }
        guard let config else { return "unknown (kernel \(release) ≥ 6.9; its config is not readable)" }
        return config["CONFIG_FUSE_PASSTHROUGH"] == "y" ? "yes (CONFIG_FUSE_PASSTHROUGH=y)" : "no (CONFIG_FUSE_PASSTHROUGH not set)"
    }

    /// FUSE over io_uring (kernel 6.14): the module parameter exists only when built in.
    var ioUring: String {
        if let enableUring { return "yes, " + (enableUring == "Y" ? "enabled" : "disabled") + " (enable_uring=\(enableUring))" }
        if let config, config["CONFIG_FUSE_IO_URING"] == "y" { return "yes (CONFIG_FUSE_IO_URING=y)" }
        if config != nil { return "no (CONFIG_FUSE_IO_URING not set)" }
        return "unknown (no enable_uring parameter; the kernel's config is not readable)"
    }
}

extension String {
    var trimmingWhitespace: String {
        var s = Substring(self)
        while let c = s.first, c.isWhitespace { s.removeFirst() }
        while let c = s.last, c.isWhitespace { s.removeLast() }
        return String(s)
    }
}
