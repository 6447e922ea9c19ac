import StrataOCI

/// The new image's config: the base config as stored, plus the new layer's diff_id, a history
/// entry for it and the commit time. Everything else is kept byte-for-byte in meaning.
enum ConfigEditor {
    static func committed(base configBytes: [UInt8], diffID: Digest, created: String, message: String?) throws -> [UInt8] {
        var config = try JSONCoding.decode(JSONValue.self, from: configBytes, what: "base image config")
        guard case .object = config else { throw CommitError("base image config: not a JSON object") }

        var rootfs = config["rootfs"] ?? .object([:])
        guard case .object = rootfs else { throw CommitError("base image config: field \"rootfs\" is not an object") }
        var diffIDs: [JSONValue] = []
        if let existing = rootfs["diff_ids"] {
            guard case .array(let a) = existing else { throw CommitError("base image config: field \"rootfs.diff_ids\" is not an array") }
            diffIDs = a
        }
        rootfs["type"] = .string("layers")
        rootfs["diff_ids"] = .array(diffIDs + [.string(diffID.description)])
        config["rootfs"] = rootfs

        var history: [JSONValue] = []
        if let existing = config["history"], existing != .null {
            guard case .array(let a) = existing else { throw CommitError("base image config: field \"history\" is not an array") }
            history = a
        }
        var entry: [String: JSONValue] = ["created": .string(created), "created_by": .string("strata commit")]
        if let message { entry["comment"] = .string(message) }
        config["history"] = .array(history + [.object(entry)])
        config["created"] = .string(created)
        return try JSONCoding.encode(config)
    }

    /// The base config with `rootfs.diff_ids` replaced (a converted image: same layers, other bytes).
    static func replacingDiffIDs(base configBytes: [UInt8], diffIDs: [Digest]) throws -> [UInt8] {
        var config = try JSONCoding.decode(JSONValue.self, from: configBytes, what: "image config")
        guard case .object = config else { throw CommitError("image config: not a JSON object") }
        var rootfs = config["rootfs"] ?? .object([:])
        guard case .object = rootfs else { throw CommitError("image config: field \"rootfs\" is not an object") }
        rootfs["type"] = .string("layers")
        rootfs["diff_ids"] = .array(diffIDs.map { .string($0.description) })
        config["rootfs"] = rootfs
        return try JSONCoding.encode(config)
    }
}
