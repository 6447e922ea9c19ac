/// The part of the OCI runtime-spec config.json (config.md, config-linux.md) that a bundle
/// made from an image needs. Optional fields stay absent from the JSON when nil, so the
/// output carries only what Strata decided, the way `runc spec` writes its default.
public struct RuntimeSpec: Hashable, Sendable, Codable {
    public var ociVersion: String
    public var process: Process
    public var root: Root
    public var hostname: String?
    public var domainname: String?
    public var mounts: [Mount]
    public var annotations: [String: String]?
    public var linux: Linux

    public init(ociVersion: String, process: Process, root: Root, hostname: String? = nil,
                domainname: String? = nil, mounts: [Mount], annotations: [String: String]? = nil, linux: Linux) {
        self.ociVersion = ociVersion
        self.process = process
        self.root = root
        self.hostname = hostname
        self.domainname = domainname
        self.mounts = mounts
        self.annotations = annotations
        self.linux = linux
    }

    public struct Process: Hashable, Sendable, Codable {
        public var terminal: Bool
        public var user: User
        public var args: [String]
        public var env: [String]
        public var cwd: String
        public var capabilities: Capabilities
        public var rlimits: [Rlimit]
        public var noNewPrivileges: Bool

        public init(terminal: Bool, user: User, args: [String], env: [String], cwd: String,
                    capabilities: Capabilities, rlimits: [Rlimit], noNewPrivileges: Bool) {
            self.terminal = terminal
            self.user = user
            self.args = args
            self.env = env
            self.cwd = cwd
            self.capabilities = capabilities
            self.rlimits = rlimits
            self.noNewPrivileges = noNewPrivileges
        }
    }

    public struct User: Hashable, Sendable, Codable {
        public var uid: UInt32
        public var gid: UInt32
        public var umask: UInt32?
        /// Absent rather than `[]` when there are none, as runc writes it.
        public var additionalGids: [UInt32]?

        public init(uid: UInt32, gid: UInt32, umask: UInt32? = nil, additionalGids: [UInt32]? = nil) {
            self.uid = uid
            self.gid = gid
            self.umask = umask
            self.additionalGids = additionalGids
        }
    }

    public struct Capabilities: Hashable, Sendable, Codable {
        public var bounding: [String]
        public var effective: [String]
        public var permitted: [String]
        public var inheritable: [String]?
        public var ambient: [String]?

        public init(bounding: [String], effective: [String], permitted: [String],
                    inheritable: [String]? = nil, ambient: [String]? = nil) {
            self.bounding = bounding
            self.effective = effective
            self.permitted = permitted
            self.inheritable = inheritable
            self.ambient = ambient
        }
    }

    public struct Rlimit: Hashable, Sendable, Codable {
        public var type: String
        public var hard: UInt64
        public var soft: UInt64

        public init(type: String, hard: UInt64, soft: UInt64) {
            self.type = type
            self.hard = hard
            self.soft = soft
        }
    }

    public struct Root: Hashable, Sendable, Codable {
        public var path: String
        public var readonly: Bool

        public init(path: String, readonly: Bool) {
            self.path = path
            self.readonly = readonly
        }
    }

    public struct Mount: Hashable, Sendable, Codable {
        public var destination: String
        public var type: String
        public var source: String
        public var options: [String]?

        public init(destination: String, type: String, source: String, options: [String]? = nil) {
            self.destination = destination
            self.type = type
            self.source = source
            self.options = options
        }
    }

    public struct Linux: Hashable, Sendable, Codable {
        public var resources: Resources?
        public var namespaces: [Namespace]
        public var maskedPaths: [String]
        public var readonlyPaths: [String]

        public init(resources: Resources? = nil, namespaces: [Namespace], maskedPaths: [String], readonlyPaths: [String]) {
            self.resources = resources
            self.namespaces = namespaces
            self.maskedPaths = maskedPaths
            self.readonlyPaths = readonlyPaths
        }
    }

    public struct Namespace: Hashable, Sendable, Codable {
        public var type: String
        public var path: String?

        public init(type: String, path: String? = nil) {
            self.type = type
            self.path = path
        }
    }

    public struct Resources: Hashable, Sendable, Codable {
        public var devices: [DeviceRule]?

        public init(devices: [DeviceRule]? = nil) { self.devices = devices }
    }

    public struct DeviceRule: Hashable, Sendable, Codable {
        public var allow: Bool
        public var type: String?
        public var major: Int64?
        public var minor: Int64?
        public var access: String?

        public init(allow: Bool, type: String? = nil, major: Int64? = nil, minor: Int64? = nil, access: String? = nil) {
            self.allow = allow
            self.type = type
            self.major = major
            self.minor = minor
            self.access = access
        }
    }
}
