#if canImport(Glibc)
import Glibc
#endif
import StrataOCI
import StrataSystem

/// Where a bundle's writes go.
public enum UpperChoice: Equatable, Sendable {
    /// BUNDLE/upper, made by `bundle` and removed with it.
    case inBundle
    /// A directory the user names (created if missing); kept on removal.
    case directory(String)
    /// None: a read-only root (`root.readonly` true).
    case none
}

/// Makes and removes bundles: BUNDLE/config.json, the image mounted at BUNDLE/rootfs, the
/// writable upper, and the record of what was made. Every step is undone when a later one
/// fails, so a failed `bundle` leaves the directory as it found it.
public enum BundleBuilder {
    public struct Request: Sendable {
        /// The image reference as `strata mount` takes it (absolute layout path).
        public var image: String
        public var config: ImageConfig
        public var manifestDigest: String?
        /// Absolute.
        public var directory: String
        public var upper: UpperChoice
        /// What the command line changes in config.json.
        public var options: BundleOptions

        public init(image: String, config: ImageConfig, manifestDigest: String? = nil, directory: String, upper: UpperChoice,
                    options: BundleOptions = .init()) {
            self.options = options
            self.image = image
            self.config = config
            self.manifestDigest = manifestDigest
            self.directory = directory
            self.upper = upper
        }
    }

    @discardableResult
    public static func create(_ request: Request, mounter: Mounter) throws(BundleError) -> BundleRecord {
        let layout = BundleLayout(directory: request.directory)
        var createdDirectory = false
        if !FileIO.exists(layout.directory) {
            do { try FileDescriptor.currentDirectory.makeDirectory(at: layout.directory, mode: 0o755) } catch {
                throw BundleError("cannot create bundle directory \(layout.directory)", cause: error)
            }
            createdDirectory = true
        } else if !FileIO.isDirectory(layout.directory) {
            throw BundleError("bundle \(layout.directory) exists and is not a directory")
        }

        var record = BundleRecord(image: request.image, manifestDigest: request.manifestDigest,
                                  createdBundleDirectory: createdDirectory)
        // The record is the lock: O_EXCL, so of two `bundle` runs on one directory only one
        // gets past here, and a bundle made earlier is never mounted over.
        do {
            try claim(layout, record)
        } catch {
            if createdDirectory { try? FileDescriptor.currentDirectory.unlink(at: layout.directory, directory: true) }
            throw error
        }
        do {
            try prepare(layout, request, &record)
            try writeRecord(layout, record)
            try mounter.mount(image: request.image, at: layout.rootfs, upper: record.upper, work: record.work)
            if record.upper == nil { try checkMountPoints(request.options.mounts, rootfs: layout.rootfs) }
            let passwd = try RootedFile.read(root: layout.rootfs, path: "/etc/passwd")
            let group = try RootedFile.read(root: layout.rootfs, path: "/etc/group")
            let spec = try SpecConverter.convert(config: request.config, passwd: passwd, group: group,
                                                 readOnly: record.upper == nil, options: request.options)
            record.createdConfig = true
            try writeRecord(layout, record)
            try write(layout.config, try SpecJSON.encode(spec), what: "config.json")
            record.state = .ready
            try writeRecord(layout, record)
            return record
        } catch {
            // Undo in reverse; the first error is the one worth reporting.
            try? dismantle(layout, record, mounter: mounter)
            throw error
        }
    }

    /// Unmounts BUNDLE/rootfs and removes what `create` made, as its record says; a
    /// user-given upper and anything else the user put in BUNDLE stay. Nothing is removed
    /// while `containers` (a runtime's state) names a container on the bundle, or while the
    /// rootfs is in use (the mounter's unmount, never lazy, fails then).
    public static func remove(directory: String, mounter: Mounter,
                              containers: (String) -> [RuntimeContainers.Container] = { _ in [] }) throws(BundleError) {
        let layout = BundleLayout(directory: directory)
        let bytes: [UInt8]
        do {
            bytes = try FileIO.readAll(layout.record)
        } catch let error as SystemError where error.code == ENOENT {
            throw BundleError("\(layout.directory) is not a strata bundle (no \(BundleRecord.fileName) in it)")
        } catch {
            throw BundleError("cannot read \(layout.record)", wrapping: error)
        }
        let record: BundleRecord
        do {
            record = try JSONCoding.decode(BundleRecord.self, from: bytes, what: layout.record)
        } catch {
            throw BundleError("\(error)")
        }
        guard record.version == BundleRecord.currentVersion else {
            throw BundleError("\(layout.record): version \(record.version) is not supported (expected \(BundleRecord.currentVersion))")
        }
        let live = containers(layout.directory)
        if let first = live.first {
            let names = live.map(\.description).joined(separator: ", ")
            throw BundleError("bundle \(layout.directory) is in use by container \(names): delete it first (\(first.runtime) delete \(first.id)); nothing was removed")
        }
        try dismantle(layout, record, mounter: mounter)
    }

    // MARK: - Steps

    /// A runtime creates a missing mount point in the rootfs: a read-only one cannot have it.
    private static func checkMountPoints(_ mounts: [RuntimeSpec.Mount], rootfs: String) throws(BundleError) {
        for m in mounts {
            guard try RootedFile.resolve(root: rootfs, path: m.destination) == nil else { continue }
            throw BundleError("--mount \(m.source):\(m.destination): \(m.destination) does not exist in the image, and --read-only leaves no upper for the runtime to create it in; mount on an existing directory or drop --read-only")
        }
    }

    private static func claim(_ layout: BundleLayout, _ record: BundleRecord) throws(BundleError) {
        do { try FileDescriptor.openat(.currentDirectory, layout.record, O_WRONLY | O_CREAT | O_EXCL, mode: 0o644).close() } catch {
            if error.code == EEXIST {
                throw BundleError("\(layout.directory) is already a strata bundle (\(layout.record) exists); remove it first with `strata bundle --remove \(layout.directory)`")
            }
            throw BundleError("cannot create \(layout.record)", cause: error)
        }
        do {
            try writeRecord(layout, record)
        } catch {
            try? FileDescriptor.currentDirectory.unlink(at: layout.record)
            throw error
        }
    }

    /// Checks the directory holds no bundle strata did not make, and creates rootfs and the
    /// upper, noting each in the record.
    private static func prepare(_ layout: BundleLayout, _ request: Request, _ record: inout BundleRecord) throws(BundleError) {
        guard !FileIO.exists(layout.config) else {
            throw BundleError("\(layout.config) already exists; strata bundle does not overwrite a bundle it did not make")
        }
        guard !MountTable.isMountPoint(layout.rootfs) else {
            throw BundleError("\(layout.rootfs) is already a mount point")
        }
        if FileIO.exists(layout.rootfs) {
            guard FileIO.isDirectory(layout.rootfs), try isEmptyDirectory(layout.rootfs) else {
                throw BundleError("\(layout.rootfs) exists and is not an empty directory")
            }
        } else {
            try makeDirectory(layout.rootfs)
            record.createdRootfs = true
        }
        switch request.upper {
        case .none:
            record.upper = nil
        case .inBundle:
            for path in [layout.defaultUpper, layout.work] where FileIO.exists(path) {
                throw BundleError("\(path) already exists; name an upper with --upper to use one that exists")
            }
            try makeDirectory(layout.defaultUpper)
            record.upper = layout.defaultUpper
            record.ownsUpper = true
            try makeDirectory(layout.work)
            record.work = layout.work
        case .directory(let path):
            guard path.hasPrefix("/") else { throw BundleError("upper \(path) must be an absolute path") }
            guard path != layout.rootfs && !path.hasPrefix(layout.rootfs + "/") else {
                throw BundleError("upper \(path) cannot be inside the bundle's rootfs")
            }
            if FileIO.exists(path) {
                guard FileIO.isDirectory(path) else { throw BundleError("upper \(path) is not a directory") }
            } else {
                do { try FileIO.makeDirectories(path) } catch {
                    throw BundleError("cannot create upper", wrapping: error)
                }
            }
            record.upper = path
            record.ownsUpper = false
        }
    }

    /// Undoes `create` as far as `record` says it went. Stops at the unmount when that
    /// fails: removing directories under a live mount would be removing the image's view.
    private static func dismantle(_ layout: BundleLayout, _ record: BundleRecord, mounter: Mounter) throws(BundleError) {
        if mounter.isMounted(layout.rootfs) {
            try mounter.unmount(layout.rootfs)
        }
        if record.createdConfig { try remove(layout.config) }
        if record.createdRootfs { try remove(layout.rootfs, directory: true) }
        if record.ownsUpper, let upper = record.upper {
            try TreeRemover.remove(upper)
        }
        if let work = record.work {
            try TreeRemover.remove(work)
        }
        try remove(layout.record)
        // A directory the user has since put files into stays, with them.
        if record.createdBundleDirectory { try? FileDescriptor.currentDirectory.unlink(at: layout.directory, directory: true) }
    }

    /// unlink, or rmdir; already gone is fine.
    private static func remove(_ path: String, directory: Bool = false) throws(BundleError) {
        do { try FileDescriptor.currentDirectory.unlink(at: path, directory: directory) } catch where error.code == ENOENT {} catch {
            throw BundleError("cannot remove \(path)", cause: error)
        }
    }

    // MARK: - Files

    private static func writeRecord(_ layout: BundleLayout, _ record: BundleRecord) throws(BundleError) {
        let bytes: [UInt8]
        do { bytes = try JSONCoding.encode(record) + [0x0a] } catch { throw BundleError("\(error)") }
        try write(layout.record, bytes, what: BundleRecord.fileName)
    }

    private static func write(_ path: String, _ bytes: [UInt8], what: String) throws(BundleError) {
        do { try FileIO.writeAtomically(path, bytes) } catch {
            throw BundleError("cannot write \(what)", wrapping: error)
        }
    }

    private static func makeDirectory(_ path: String) throws(BundleError) {
        do { try FileDescriptor.currentDirectory.makeDirectory(at: path, mode: 0o755) } catch {
            throw BundleError(SystemError(code: error.code, operation: "mkdir", path: path))
        }
    }

    private static func isEmptyDirectory(_ path: String) throws(BundleError) -> Bool {
        do {
            let dir = try FileDescriptor.openat(.currentDirectory, path, O_RDONLY | O_DIRECTORY)
            defer { dir.close() }
            return try dir.entries().isEmpty
        } catch {
            throw BundleError(SystemError(code: error.code, operation: error.operation, path: path))
        }
    }
}
