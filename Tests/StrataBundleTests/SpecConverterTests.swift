import Testing
import StrataOCI
@testable import StrataBundle

private func image(_ c: ContainerConfig?, os: String = "linux") -> ImageConfig {
    ImageConfig(architecture: "amd64", os: os, config: c, rootfs: .init(diffIDs: []))
}

private func convert(_ c: ContainerConfig?, readOnly: Bool = false) throws -> RuntimeSpec {
    try SpecConverter.convert(config: image(c), passwd: nil, group: nil, readOnly: readOnly)
}

private func message(_ body: () throws -> Void) -> String {
    do { try body() } catch { return "\(error)" }
    return "(no error)"
}

@Test func processFromConfig() throws {
    let spec = try convert(ContainerConfig(env: ["PATH=/bin", "A=b=c"], entrypoint: ["/bin/sh", "-c"],
                                           cmd: ["echo hi"], workingDir: "/work"))
    #expect(spec.process.args == ["/bin/sh", "-c", "echo hi"])
    #expect(spec.process.env == ["PATH=/bin", "A=b=c", "TERM=xterm", "HOME=/"])
    #expect(spec.process.cwd == "/work")
    #expect(spec.process.terminal == false)
    #expect(spec.process.user == .init(uid: 0, gid: 0))
    #expect(spec.root == .init(path: "rootfs", readonly: false))
    #expect(try convert(ContainerConfig(cmd: ["x"]), readOnly: true).root.readonly == true)
}

@Test func entrypointOrCmdAlone() throws {
    #expect(try convert(ContainerConfig(entrypoint: ["/app"])).process.args == ["/app"])
    #expect(try convert(ContainerConfig(cmd: ["/bin/sh"])).process.args == ["/bin/sh"])
}

@Test func defaultPathOnlyWhenEnvHasNone() throws {
    let added = ["TERM=xterm", "HOME=/"]
    #expect(try convert(ContainerConfig(cmd: ["x"])).process.env == [RuntimeDefaults.path] + added)
    #expect(try convert(ContainerConfig(env: ["A=1"], cmd: ["x"])).process.env == [RuntimeDefaults.path, "A=1"] + added)
    // A variable named like PATH is not PATH.
    #expect(try convert(ContainerConfig(env: ["PATHX=1"], cmd: ["x"])).process.env.first == RuntimeDefaults.path)
    #expect(try convert(ContainerConfig(env: ["PATH="], cmd: ["x"])).process.env == ["PATH="] + added)
}

@Test func cwdDefaultsToRoot() throws {
    #expect(try convert(ContainerConfig(cmd: ["x"])).process.cwd == "/")
    #expect(try convert(ContainerConfig(cmd: ["x"], workingDir: "")).process.cwd == "/")
}

@Test func hostnameOnlyWhenSet() throws {
    #expect(try convert(ContainerConfig(cmd: ["x"])).hostname == nil)
    #expect(try convert(ContainerConfig(cmd: ["x"], hostname: "web")).hostname == "web")
    #expect(try convert(ContainerConfig(cmd: ["x"], domainname: "example.org")).domainname == "example.org")
}

@Test func annotationsFromConfigWithLabelsWinning() throws {
    var config = ImageConfig(created: "2024-01-02T03:04:05Z", author: "someone", architecture: "arm64", os: "linux",
                             osVersion: "6.1", osFeatures: ["a", "b"], variant: "v8",
                             config: ContainerConfig(exposedPorts: ["8080/tcp": .init(), "53/udp": .init(), "80": .init()],
                                                     cmd: ["x"], labels: ["com.example.x": "1",
                                                                          "org.opencontainers.image.author": "label author"],
                                                     stopSignal: "SIGQUIT"),
                             rootfs: .init(diffIDs: []))
    let a = try SpecConverter.convert(config: config, passwd: nil, group: nil, readOnly: false).annotations ?? [:]
    let p = "org.opencontainers.image."
    #expect(a == [
        p + "os": "linux", p + "architecture": "arm64", p + "variant": "v8", p + "os.version": "6.1",
        p + "os.features": "a,b", p + "author": "label author", p + "created": "2024-01-02T03:04:05Z",
        p + "stopSignal": "SIGQUIT", p + "exposedPorts": "53/udp,80,8080/tcp", "com.example.x": "1",
    ])
    config.config?.labels = nil
    config.author = nil
    let b = try SpecConverter.convert(config: config, passwd: nil, group: nil, readOnly: false).annotations ?? [:]
    #expect(b[p + "author"] == nil)
    #expect(b["com.example.x"] == nil)
}

@Test func malformedValuesNameTheirField() {
    let cases: [(ContainerConfig?, [String])] = [
        (ContainerConfig(cmd: [""]), ["config.Cmd[0]", "empty"]),
        (ContainerConfig(entrypoint: ["", "x"]), ["config.Entrypoint[0]"]),
        (ContainerConfig(env: ["A=1", "NOEQUALS"], cmd: ["x"]), ["config.Env[1]", "NOEQUALS", "NAME=VALUE"]),
        (ContainerConfig(env: ["=x"], cmd: ["x"]), ["config.Env[0]"]),
        (ContainerConfig(cmd: ["x"], workingDir: "relative/dir"), ["config.WorkingDir", "relative/dir", "absolute"]),
        (ContainerConfig(cmd: ["x"], stopSignal: "SIGNOPE"), ["config.StopSignal", "SIGNOPE"]),
        (ContainerConfig(cmd: ["x"], stopSignal: "99"), ["config.StopSignal", "99"]),
        (ContainerConfig(exposedPorts: ["80/quic": .init()], cmd: ["x"]), ["config.ExposedPorts", "80/quic"]),
        (ContainerConfig(exposedPorts: ["http": .init()], cmd: ["x"]), ["config.ExposedPorts", "http"]),
        (ContainerConfig(exposedPorts: ["70000": .init()], cmd: ["x"]), ["config.ExposedPorts", "70000"]),
        (ContainerConfig(cmd: ["x"], volumes: ["data": .init()]), ["config.Volumes", "data"]),
        (ContainerConfig(cmd: ["x"], hostname: "a/b"), ["config.Hostname", "a/b"]),
        (ContainerConfig(cmd: ["x"], hostname: String(repeating: "h", count: 65)), ["config.Hostname", "64"]),
        (ContainerConfig(cmd: ["x"], labels: ["": "v"]), ["config.Labels", "empty key"]),
        (ContainerConfig(user: "ghost", cmd: ["x"]), ["config.User \"ghost\""]),
    ]
    for (c, parts) in cases {
        let text = message { _ = try convert(c) }
        #expect(!text.contains("\n"))
        for part in parts { #expect(text.contains(part), "\"\(text)\" lacks \"\(part)\"") }
    }
    let windows = message { _ = try SpecConverter.convert(config: image(ContainerConfig(cmd: ["x"]), os: "windows"),
                                                          passwd: nil, group: nil, readOnly: false) }
    #expect(windows.contains("os \"windows\""))
}

@Test func stopSignalForms() {
    for good in ["SIGTERM", "TERM", "sigterm", "15", "SIGRTMIN+3", "RTMAX-1", "SIGRTMIN"] {
        #expect(Signals.isValid(good), "\(good)")
    }
    for bad in ["", "SIG", "0", "65", "SIGRTMIN+31", "TERMX", "-1"] {
        #expect(!Signals.isValid(bad), "\(bad)")
    }
}

@Test func userResolvedThroughTheImagesFiles() throws {
    let spec = try SpecConverter.convert(config: image(ContainerConfig(user: "app", cmd: ["x"])),
                                         passwd: Array("app:x:1000:1000::/:/bin/sh\n".utf8),
                                         group: Array("extra:x:5000:app\n".utf8), readOnly: false)
    #expect(spec.process.user == .init(uid: 1000, gid: 1000, additionalGids: [5000]))
}

@Test func jsonIsDeterministicSortedAndUnescaped() throws {
    let spec = try convert(ContainerConfig(env: ["PATH=/usr/bin:/bin"], cmd: ["/bin/echo", "a/b"],
                                           labels: ["z": "1", "a": "2", "m/n": "3"]))
    let one = try SpecJSON.encode(spec)
    let two = try SpecJSON.encode(try convert(ContainerConfig(env: ["PATH=/usr/bin:/bin"], cmd: ["/bin/echo", "a/b"],
                                                              labels: ["m/n": "3", "a": "2", "z": "1"])))
    #expect(one == two)
    let text = String(decoding: one, as: UTF8.self)
    #expect(!text.contains("\\/"))
    #expect(text.hasSuffix("}\n"))
    let order = ["\"annotations\"", "\"linux\"", "\"mounts\"", "\"ociVersion\"", "\"process\"", "\"root\""]
    let positions = order.map { text.range(of: $0)!.lowerBound }
    #expect(positions == positions.sorted())
    // Absent optionals stay absent, as in `runc spec`.
    #expect(!text.contains("additionalGids"))
    #expect(!text.contains("hostname"))
    #expect(try SpecJSON.decode(one, what: "config.json") == spec)
}

/// umoci's defaults: ["sh"] when nothing names a program, TERM=xterm, HOME from the user's
/// passwd entry (else "/"), neither overriding what the environment already sets.
@Test func umociDefaults() throws {
    #expect(try convert(nil).process.args == ["sh"])
    #expect(try convert(ContainerConfig(entrypoint: [], cmd: [])).process.args == ["sh"])
    let passwd = Array("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\nnohome:x:1001:1001\n".utf8)
    func env(_ user: String?, _ env: [String]? = nil) throws -> [String] {
        try SpecConverter.convert(config: image(ContainerConfig(user: user, env: env, cmd: ["x"])), passwd: passwd, group: nil,
                                  readOnly: false).process.env
    }
    #expect(try env(nil).suffix(2) == ["TERM=xterm", "HOME=/root"])
    #expect(try env("app").last == "HOME=/home/app")
    #expect(try env("1000:5").last == "HOME=/home/app")
    #expect(try env("1001").last == "HOME=/")
    #expect(try env("4242").last == "HOME=/")
    #expect(try env("app", ["HOME=/data", "TERM=dumb"]) == [RuntimeDefaults.path, "HOME=/data", "TERM=dumb"])
}

@Test func bundleOptionsReplaceTheImages() throws {
    let passwd = Array("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n".utf8)
    let config = image(ContainerConfig(user: "root", env: ["A=1", "B=2"], entrypoint: ["/entry"], cmd: ["arg"],
                                       workingDir: "/srv", hostname: "img"))
    let options = BundleOptions(env: ["B=3", "C=4"], workdir: "/tmp", user: "app", hostname: "box", tty: true,
                                mounts: [try BundleOptions.bindMount("/host:/data:ro"), try BundleOptions.bindMount("/x:/y")],
                                command: ["/bin/echo", "hi"])
    let spec = try SpecConverter.convert(config: config, passwd: passwd, group: nil, readOnly: false, options: options)
    #expect(spec.process.args == ["/bin/echo", "hi"])
    #expect(spec.process.env == [RuntimeDefaults.path, "A=1", "B=3", "C=4", "TERM=xterm", "HOME=/home/app"])
    #expect(spec.process.cwd == "/tmp")
    #expect(spec.process.user == .init(uid: 1000, gid: 1000))
    #expect(spec.hostname == "box")
    #expect(spec.process.terminal == true)
    #expect(Array(spec.mounts.suffix(2)) == [.init(destination: "/data", type: "bind", source: "/host", options: ["rbind", "ro"]),
                                             .init(destination: "/y", type: "bind", source: "/x", options: ["rbind", "rw"])])
    // Without options nothing changes, and the image's entrypoint stays.
    #expect(try SpecConverter.convert(config: config, passwd: passwd, group: nil, readOnly: false).process.args == ["/entry", "arg"])
    for (bad, part) in [(BundleOptions(env: ["NOEQ"]), "--env"), (BundleOptions(workdir: "rel"), "--workdir"),
                        (BundleOptions(user: "ghost"), "ghost"), (BundleOptions(command: [""]), "command")] {
        let text = message { _ = try SpecConverter.convert(config: config, passwd: passwd, group: nil, readOnly: false, options: bad) }
        #expect(text.contains(part), "\(text)")
    }
    for bad in ["/a", "a:/b", "/a:b", "/a:/b:rx", "/a:/b:ro:x"] {
        #expect(message { _ = try BundleOptions.bindMount(bad) }.contains("--mount"), "\(bad)")
    }
}
