/// How a Strata tree is mounted. The defaults suit an immutable, read-only tree: nothing
/// changes behind the kernel's back, so entries, attributes, negative lookups and page
/// cache can all be kept for a long time.
public struct FuseMountOptions: Sendable, Equatable {
    /// Lets users other than the mounting one see the tree (containers run as other uids).
    public var allowOther: Bool = false
    /// Mounts `ro`: the kernel refuses writes before they reach the adapter.
    public var readOnly: Bool = true
    /// First column of /proc/mounts, e.g. "strata:alpine:3.20".
    public var fsName: String = "strata"
    /// Shown as `fuse.<subtype>` in /proc/mounts.
    public var subtype: String = "strata"
    public var entryTimeout: Double = 86400
    public var attrTimeout: Double = 86400
    /// How long the kernel remembers that a name does not exist; 0 answers ENOENT instead.
    public var negativeTimeout: Double = 86400
    /// Keeps the page cache of a file between opens (content never changes).
    public var keepCache: Bool = true
    /// Entry and attribute timeout of the nodes a writable core marks stable (image entries
    /// never copied up: `NodeAttributes.stable`), whose files also keep their page cache; the
    /// core invalidates what the kernel keeps of them when they change.
    public var stableTimeout: Double = 86400
    /// Largest read request; passed both as `-o max_read` and in `init` (they must agree,
    /// or INIT fails with EPROTO).
    public var maxRead: Int = 1 << 20
    /// Read-ahead of the mount's backing device, set after mount through sysfs; the kernel
    /// only lets a FUSE server lower it in INIT. nil leaves the kernel default (128 KiB).
    public var readAhead: Int? = 1 << 20
    /// Always answer READDIRPLUS (attributes with names): `ls -l` and `find` on a container
    /// rootfs then need no LOOKUP per entry. false uses plain READDIR.
    public var readdirPlus: Bool = true
    /// Threads serving requests, all on the one /dev/fuse descriptor (`WorkerLoop`). Requests
    /// that cannot block are answered by the thread that read them, so a tree walk stays on one
    /// thread; reads (and a writable mount's requests) are handed over so that several
    /// readers' span decodes and a copy-up do not hold up the others. 1 serves everything on
    /// the loop's own thread.
    public var maxThreads: Int = 8
    /// libfuse's `-d`: every request logged to stderr.
    public var debug: Bool = false
    /// fusermount3 clears the mount if the daemon dies (SIGKILL included).
    public var autoUnmount: Bool = false
    /// Honour setuid/setgid bits (libfuse mounts `nosuid,nodev` by default; `nodev` stays).
    /// A container's rootfs needs it for su, sudo, ping. Root only: fusermount3 refuses it.
    public var suid: Bool = false

    public init() {}

    public init(allowOther: Bool = false, readOnly: Bool = true, fsName: String = "strata",
                subtype: String = "strata", entryTimeout: Double = 86400, attrTimeout: Double = 86400,
                negativeTimeout: Double = 86400, keepCache: Bool = true, maxRead: Int = 1 << 20,
                readAhead: Int? = 1 << 20, readdirPlus: Bool = true, maxThreads: Int = 8,
                debug: Bool = false, autoUnmount: Bool = false, suid: Bool = false) {
        self.allowOther = allowOther; self.readOnly = readOnly; self.fsName = fsName
        self.subtype = subtype; self.entryTimeout = entryTimeout; self.attrTimeout = attrTimeout
        self.negativeTimeout = negativeTimeout; self.keepCache = keepCache; self.maxRead = maxRead
        self.readAhead = readAhead; self.readdirPlus = readdirPlus; self.maxThreads = maxThreads
        self.debug = debug; self.autoUnmount = autoUnmount; self.suid = suid
    }

    /// The argument vector for fuse_session_new (argv[0] included). One `-o` per option so
    /// that only values need escaping: fuse_opt splits on commas, a backslash escapes.
    var sessionArguments: [String] {
        var options = ["default_permissions",  // the kernel checks modes; the adapter does not
                       "fsname=\(Self.escape(fsName))",
                       "subtype=\(Self.escape(subtype))",
                       "max_read=\(maxRead)"]
        if readOnly { options.append("ro") }
        if allowOther { options.append("allow_other") }
        if autoUnmount { options.append("auto_unmount") }
        if suid { options.append("suid") }
        var arguments = ["strata"]
        for option in options { arguments += ["-o", option] }
        if debug { arguments.append("-d") }
        return arguments
    }

    static func escape(_ value: String) -> String {
        var out = ""
        for character in value {
            if character == "," || character == "\\" { out.append("\\") }
            out.append(character)
        }
        return out
    }
}
