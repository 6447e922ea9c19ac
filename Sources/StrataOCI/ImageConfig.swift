/// An image configuration (config.md; Docker's is a superset). Only the fields Strata uses
/// are modelled; unknown keys are ignored on decoding, so keep the original bytes
/// (`ResolvedImage.configBytes`) when exact re-serialisation matters.
public struct ImageConfig: Hashable, Sendable, Codable {
    public var created: String?
    public var author: String?
    public var architecture: String
    public var os: String
    public var osVersion: String?
    public var osFeatures: [String]?
    public var variant: String?
    public var config: ContainerConfig?
    public var rootfs: RootFS
    public var history: [History]?

    public init(created: String? = nil, author: String? = nil, architecture: String, os: String,
                osVersion: String? = nil, osFeatures: [String]? = nil, variant: String? = nil,
                config: ContainerConfig? = nil, rootfs: RootFS, history: [History]? = nil) {
        self.created = created
        self.author = author
        self.architecture = architecture
        self.os = os
        self.osVersion = osVersion
        self.osFeatures = osFeatures
        self.variant = variant
        self.config = config
        self.rootfs = rootfs
        self.history = history
    }

    /// The platform the config declares.
    public var platform: Platform {
        Platform(os: os, architecture: architecture, variant: variant, osVersion: osVersion, osFeatures: osFeatures)
    }

    enum CodingKeys: String, CodingKey {
        case created, author, architecture, os, variant, config, rootfs, history
        case osVersion = "os.version"
        case osFeatures = "os.features"
    }

    public struct RootFS: Hashable, Sendable, Codable {
        public var type: String
        public var diffIDs: [Digest]

        public init(type: String = "layers", diffIDs: [Digest]) {
            self.type = type
            self.diffIDs = diffIDs
        }

        enum CodingKeys: String, CodingKey {
            case type
            case diffIDs = "diff_ids"
        }
    }

    public struct History: Hashable, Sendable, Codable {
        public var created: String?
        public var createdBy: String?
        public var author: String?
        public var comment: String?
        public var emptyLayer: Bool?

        public init(created: String? = nil, createdBy: String? = nil, author: String? = nil,
                    comment: String? = nil, emptyLayer: Bool? = nil) {
            self.created = created
            self.createdBy = createdBy
            self.author = author
            self.comment = comment
            self.emptyLayer = emptyLayer
        }

        enum CodingKeys: String, CodingKey {
            case created, author, comment
            case createdBy = "created_by"
            case emptyLayer = "empty_layer"
        }
    }
}

/// The execution parameters of a container (config.md "config"), with Docker's
/// Hostname/Domainname. JSON keys are capitalised as in the spec.
public struct ContainerConfig: Hashable, Sendable, Codable {
    public var user: String?
    public var exposedPorts: [String: EmptyObject]?
    public var env: [String]?
    public var entrypoint: [String]?
    public var cmd: [String]?
    public var volumes: [String: EmptyObject]?
    public var workingDir: String?
    public var labels: [String: String]?
    public var stopSignal: String?
    public var argsEscaped: Bool?
    public var hostname: String?
    public var domainname: String?

    public init(user: String? = nil, exposedPorts: [String: EmptyObject]? = nil, env: [String]? = nil,
                entrypoint: [String]? = nil, cmd: [String]? = nil, volumes: [String: EmptyObject]? = nil,
                workingDir: String? = nil, labels: [String: String]? = nil, stopSignal: String? = nil,
                argsEscaped: Bool? = nil, hostname: String? = nil, domainname: String? = nil) {
        self.user = user
        self.exposedPorts = exposedPorts
        self.env = env
        self.entrypoint = entrypoint
        self.cmd = cmd
        self.volumes = volumes
        self.workingDir = workingDir
        self.labels = labels
        self.stopSignal = stopSignal
        self.argsEscaped = argsEscaped
        self.hostname = hostname
        self.domainname = domainname
    }

    enum CodingKeys: String, CodingKey {
        case user = "User"
        case exposedPorts = "ExposedPorts"
        case env = "Env"
        case entrypoint = "Entrypoint"
        case cmd = "Cmd"
        case volumes = "Volumes"
        case workingDir = "WorkingDir"
        case labels = "Labels"
        case stopSignal = "StopSignal"
        case argsEscaped = "ArgsEscaped"
        case hostname = "Hostname"
        case domainname = "Domainname"
    }
}

/// The `{}` values of ExposedPorts and Volumes. Whatever an object holds is ignored.
public struct EmptyObject: Hashable, Sendable, Codable {
    public init() {}
    public init(from decoder: Decoder) throws {
        _ = try decoder.container(keyedBy: AnyKey.self)
    }
    public func encode(to encoder: Encoder) throws {
        _ = encoder.container(keyedBy: AnyKey.self)
    }
    private struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }
}
