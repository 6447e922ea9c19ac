import Foundation
import Testing
import StrataOCI
import StrataTestSupport
@testable import StrataBundle

private let runcPath = ["/usr/sbin/runc", "/usr/bin/runc"].first { FileManager.default.isExecutableFile(atPath: $0) }

/// The defaults must be the ones `runc spec` writes on this machine: same namespaces,
/// mounts, capability sets, masked and read-only paths, rlimits, device rules.
@Test(.enabled(if: runcPath != nil, "runc is not installed"))
func defaultsMatchRuncSpec() throws {
    let temp = try TempDirectory()
    defer { withExtendedLifetime(temp) {} }
    try Command.check(runcPath!, ["spec", "--bundle", temp.path])
    let bytes = try Data(contentsOf: URL(fileURLWithPath: temp.child("config.json")))
    let theirs = try JSONDecoder().decode(RuntimeSpec.self, from: bytes)

    let ours = try SpecConverter.convert(
        config: ImageConfig(architecture: "amd64", os: "linux", config: ContainerConfig(cmd: ["sh"]), rootfs: .init(diffIDs: [])),
        passwd: nil, group: nil, readOnly: true)
    #expect(ours.linux.namespaces == theirs.linux.namespaces)
    #expect(ours.linux.maskedPaths == theirs.linux.maskedPaths)
    #expect(ours.linux.readonlyPaths == theirs.linux.readonlyPaths)
    #expect(ours.linux.resources == theirs.linux.resources)
    #expect(ours.mounts == theirs.mounts)
    #expect(ours.process.capabilities == theirs.process.capabilities)
    #expect(ours.process.rlimits == theirs.process.rlimits)
    // runc spec forbids privilege gains; bundles allow them, as containerd and podman do.
    #expect(theirs.process.noNewPrivileges == true && ours.process.noNewPrivileges == false)
    #expect(ours.process.user == theirs.process.user)
    #expect(ours.process.cwd == theirs.process.cwd)
    #expect(ours.process.args == theirs.process.args)
    #expect(ours.root == theirs.root)
    // runc's spec is for a terminal session; a bundle's process runs without one.
    #expect(theirs.process.terminal == true && ours.process.terminal == false)
    // runc adds TERM=xterm for its terminal; PATH is the same.
    #expect(theirs.process.env.contains(RuntimeDefaults.path))

    // Nothing runc writes is lost by the model: decoding and re-encoding keeps every key.
    let raw = try #require(try JSONSerialization.jsonObject(with: bytes) as? NSDictionary)
    let again = try #require(try JSONSerialization.jsonObject(with: Data(try SpecJSON.encode(theirs))) as? NSDictionary)
    #expect(raw == again)
}
