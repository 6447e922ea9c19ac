extension ImageConfig {
    /// Decodes an image's config and checks what every image's must hold: `rootfs.type` is
    /// "layers", with one diff_id per layer of its manifest. `name` names the config in errors,
    /// `owner` the manifest (or archive entry) that lists `layerCount` layers.
    static func decodeChecked(_ bytes: [UInt8], name: String, owner: String, layerCount: Int,
                              configReference: String) throws -> ImageConfig {
        let config = try JSONCoding.decode(ImageConfig.self, from: bytes, what: name)
        guard config.rootfs.type == "layers" else {
            throw OCIError("\(name): rootfs.type \"\(config.rootfs.type)\" is not \"layers\"")
        }
        guard config.rootfs.diffIDs.count == layerCount else {
            throw OCIError("\(owner): \(layerCount) layers but config \(configReference) lists \(config.rootfs.diffIDs.count) rootfs.diff_ids")
        }
        return config
    }
}
