#if canImport(Glibc)
import Glibc
#endif
import StrataSystem

/// A strata mount of an image next to `umoci unpack` of it (the reference).
public struct MountComparison {
    /// What umoci extracted.
    public let reference: TreeSnapshot
    /// What the strata mount showed.
    public let mounted: TreeSnapshot
    /// Differences left after the ignores, "left" being umoci.
    public let differences: [String]

    /// One message for a failed expectation: the differences, then both listings.
    public var report: String {
        "differences (left = umoci, right = strata):\n" + differences.joined(separator: "\n")
            + "\n--- umoci ---\n" + reference.dump() + "\n--- strata ---\n" + mounted.dump()
    }

    /// Fields that differ for reasons that are not strata's to fix, path by path ("." is the root).
    /// The root directory: umoci creates rootfs/ itself (mode 0755, mtime of the unpack)
    /// unless a layer lists "./"; strata's root comes from the image alone.
    public static let rootIgnores: [String: Set<TreeSnapshot.Field>] = [".": [.mtime, .mode, .uid, .gid, .nlink, .xattrs]]

    /// Unpacks LAYOUT:REFERENCETAG with umoci and mounts LAYOUT:TAG with strata (its own
    /// fresh index cache), captures both and compares. The mount is taken down and every
    /// temporary directory removed before returning, also when something throws.
    /// `referenceTag` differs from `tag` when umoci cannot read the image under test
    /// (zstd, Docker media types): it then names a gzip OCI twin of the same layers.
    /// `mountedImage`, when given, is what strata mounts instead of LAYOUT:TAG (the same image
    /// in another form, such as an archive of the layout). `writable`: the mount has an (empty)
    /// upper directory, so the tree is served through the writable view.
    public static func run(layout: String, tag: String, referenceTag: String? = nil, mountedImage: String? = nil,
                           ignoring: Set<TreeSnapshot.Field> = [],
                           ignoringAt: [String: Set<TreeSnapshot.Field>] = rootIgnores,
                           hashContents: Bool = true, writable: Bool = false) throws -> MountComparison {
        let work = try TempDirectory(prefix: "strata-cmp-")
        defer { withExtendedLifetime(work) {} }
        let started = time(nil)
        let rootfs = try Umoci.unpack(layout: layout, tag: referenceTag ?? tag, into: work.child("bundle"))
        let reference = try TreeSnapshot.capture(root: rootfs, hashContents: hashContents)
        let mounted = try Self.captureMount(image: mountedImage ?? "\(layout):\(tag)", work: work, hashContents: hashContents,
                                            writable: writable)
        // Directories a tar implies but never lists: umoci creates them with the time of the
        // unpack, strata with a fixed time; every other field (0755, 0:0) must still match.
        // Fixtures use past mtimes, so "not older than the unpack" singles them out.
        var ignores = ignoringAt
        for entry in reference.entries.values where entry.type == .directory && entry.mtimeSeconds >= Int64(started) {
            ignores[entry.pathString, default: []].insert(.mtime)
        }
        let diffs = reference.differences(from: mounted, ignoring: ignoring, ignoringAt: ignores)
        return MountComparison(reference: reference, mounted: mounted, differences: diffs)
    }

    /// Mounts LAYOUT:TAG under `work` (cache in `work`/cache), captures it and unmounts.
    public static func captureMount(layout: String, tag: String, work: TempDirectory,
                                    hashContents: Bool = true) throws -> TreeSnapshot {
        try captureMount(image: "\(layout):\(tag)", work: work, hashContents: hashContents)
    }

    /// Mounts IMAGE (any reference strata takes) under `work`, captures it and unmounts.
    public static func captureMount(image: String, work: TempDirectory, hashContents: Bool = true,
                                    writable: Bool = false) throws -> TreeSnapshot {
        let guardian = try MountGuard(image: image, mountpoint: work.child("mnt"),
                                      extraArgs: ["--cache", work.child("cache")] + (writable ? ["--upper", work.child("upper")] : []))
        defer { withExtendedLifetime(guardian) {} }
        let snapshot = try TreeSnapshot.capture(root: work.child("mnt"), hashContents: hashContents)
        try guardian.unmount()
        return snapshot
    }
}

extension TreeSnapshot {
    /// `differences(from:ignoring:)`, also leaving out the given fields at the given paths
    /// (relative, "." for the root): some entries legitimately differ in a few fields only.
    public func differences(from other: TreeSnapshot, ignoring: Set<Field>,
                            ignoringAt: [String: Set<Field>]) -> [String] {
        var right = other.entries
        for (path, fields) in ignoringAt {
            let key = Array(path.utf8)
            guard let l = entries[key], var r = right[key], l.type == r.type else { continue }
            // Copy the ignored fields from the left: they then compare equal.
            for field in fields {
                switch field {
                case .mode: r.mode = l.mode
                case .uid: r.uid = l.uid
                case .gid: r.gid = l.gid
                case .size: r.size = l.size
                case .mtime, .dirMtime: (r.mtimeSeconds, r.mtimeNanoseconds) = (l.mtimeSeconds, l.mtimeNanoseconds)
                case .content: r.contentSHA256 = l.contentSHA256
                case .linkTarget: r.linkTarget = l.linkTarget
                case .rdev: r.rdev = l.rdev
                case .xattrs: r.xattrs = l.xattrs
                case .nlink, .dirNlink: r.nlink = l.nlink
                case .type, .hardlinks: break
                }
            }
            right[key] = r
        }
        let adjusted = TreeSnapshot(root: other.root, entries: right, hardlinkGroups: other.hardlinkGroups)
        return differences(from: adjusted, ignoring: ignoring)
    }
}
