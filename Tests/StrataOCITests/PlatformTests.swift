import Testing
@testable import StrataOCI

@Test func platformParsing() throws {
    #expect(try Platform(parsing: "linux/amd64") == Platform(os: "linux", architecture: "amd64"))
    #expect(try Platform(parsing: "linux/arm64/v8") == Platform(os: "linux", architecture: "arm64", variant: "v8"))
    #expect(try Platform(parsing: "linux/x86_64") == Platform(os: "linux", architecture: "amd64"))
    #expect(try Platform(parsing: "linux/aarch64").description == "linux/arm64/v8")
    for bad in ["linux", "linux/", "/amd64", "linux/arm/v7/x", ""] {
        #expect(errorMessage { _ = try Platform(parsing: bad) }.hasPrefix("invalid platform \"\(bad)\""))
    }
}

@Test func kernelMachineNamesNormalise() {
    #expect(Platform.normalise(architecture: "x86_64") == ("amd64", nil))
    #expect(Platform.normalise(architecture: "aarch64") == ("arm64", "v8"))
    #expect(Platform.normalise(architecture: "armv7l") == ("arm", "v7"))
    #expect(Platform.normalise(architecture: "i686") == ("386", nil))
    for same in ["ppc64le", "s390x", "riscv64"] {
        #expect(Platform.normalise(architecture: same) == (same, nil))
    }
}

@Test func hostPlatformIsKnown() {
    let host = Platform.host
    #expect(host.os == "linux")
    #expect(!host.architecture.isEmpty && host.architecture != "x86_64" && host.architecture != "aarch64")
}

@Test func platformMatching() throws {
    let arm64 = try Platform(parsing: "linux/arm64")
    let arm64v8 = try Platform(parsing: "linux/arm64/v8")
    let armv7 = try Platform(parsing: "linux/arm/v7")
    let armv6 = try Platform(parsing: "linux/arm/v6")
    let amd64 = try Platform(parsing: "linux/amd64")
    let bareArm64 = Platform(os: "linux", architecture: "arm64")   // as written in an index
    #expect(arm64.matches(arm64v8))
    #expect(arm64v8.matches(bareArm64))            // candidate without a variant
    #expect(bareArm64.matches(arm64v8))            // arm64 without a variant is v8
    #expect(!arm64.matches(Platform(os: "linux", architecture: "arm64", variant: "v9")))
    #expect(armv7.matches(Platform(os: "linux", architecture: "arm")))
    #expect(armv7.matches(armv6))                  // an armv7 CPU runs armv6 code…
    #expect(!armv6.matches(armv7))                 // …not the reverse
    #expect(amd64.matches(Platform(os: "linux", architecture: "amd64", variant: "v3")))
    #expect(!amd64.matches(arm64v8))
    #expect(!amd64.matches(Platform(os: "windows", architecture: "amd64")))
    // The exact variant wins over a variant-less candidate, whatever the order.
    #expect(armv6.bestMatch(in: [Platform(os: "linux", architecture: "arm"), armv7, armv6]) == 2)
    #expect(armv7.bestMatch(in: [nil, armv6, Platform(os: "linux", architecture: "arm")]) == 2)
    #expect(amd64.bestMatch(in: [armv7, nil]) == nil)
    #expect(armv7.bestMatch(in: [Platform(os: "linux", architecture: "arm", variant: "v5"), armv6]) == 1)
    #expect(amd64.bestMatch(in: [Platform(os: "linux", architecture: "amd64", variant: "v3"), amd64]) == 1)
}
