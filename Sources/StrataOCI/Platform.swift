#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The platform an image runs on (image-index.md "platform"). Architectures follow GOARCH
/// spelling (amd64, arm64), as registries and `docker --platform` do.
public struct Platform: Hashable, Sendable, Codable, CustomStringConvertible {
    public var os: String
    public var architecture: String
    public var variant: String?
    public var osVersion: String?
    public var osFeatures: [String]?

    public init(os: String, architecture: String, variant: String? = nil,
                osVersion: String? = nil, osFeatures: [String]? = nil) {
        self.os = os
        self.architecture = architecture
        self.variant = variant
        self.osVersion = osVersion
        self.osFeatures = osFeatures
    }

    /// "os/arch" or "os/arch/variant", e.g. "linux/amd64", "linux/arm64/v8".
    /// Kernel spellings (x86_64, aarch64) are accepted and normalised.
    public init(parsing text: String) throws {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 2 || parts.count == 3, !parts.contains(where: \.isEmpty) else {
            throw OCIError("invalid platform \"\(text)\": expected os/architecture[/variant], e.g. linux/amd64")
        }
        let (arch, impliedVariant) = Platform.normalise(architecture: parts[1].lowercased())
        self.init(os: parts[0].lowercased(), architecture: arch,
                  variant: parts.count == 3 ? parts[2].lowercased() : impliedVariant)
    }

    public var description: String {
        variant.map { "\(os)/\(architecture)/\($0)" } ?? "\(os)/\(architecture)"
    }

    /// The platform of this machine, from uname(2).
    public static var host: Platform {
        var names = utsname()
        uname(&names)
        let sysname = withUnsafeBytes(of: &names.sysname) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let machine = withUnsafeBytes(of: &names.machine) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let (arch, variant) = normalise(architecture: machine)
        return Platform(os: sysname.lowercased(), architecture: arch, variant: variant)
    }

    /// Kernel machine names to GOARCH (plus the variant they imply).
    static func normalise(architecture machine: String) -> (String, String?) {
        switch machine {
        case "x86_64", "x86-64", "amd64": return ("amd64", nil)
        case "aarch64", "arm64": return ("arm64", "v8")
        case "armv7l", "armv7", "armhf": return ("arm", "v7")
        case "armv6l", "armv6", "armel": return ("arm", "v6")
        case "i386", "i486", "i586", "i686", "386": return ("386", nil)
        default: return (machine, nil)   // ppc64le, s390x, riscv64 are spelt alike in both
        }
    }

    /// The variant used when none is written: arm64 is always v8 in practice, arm defaults to v7.
    private var effectiveVariant: String? {
        if let variant { return variant }
        switch architecture {
        case "arm64": return "v8"
        case "arm": return "v7"
        default: return nil
        }
    }

    /// Whether an image built for `candidate` satisfies this (wanted) platform: same OS and
    /// architecture; a candidate without a variant matches any variant; arm64 without a variant
    /// is v8, arm without one is v7; a wanted platform without a variant (amd64) takes any;
    /// an arm vN platform also runs older arm variants. os.version and os.features are not
    /// compared (Linux images leave them out).
    public func matches(_ candidate: Platform) -> Bool {
        score(candidate) > 0
    }

    /// Picks the best of `candidates` for this platform: the exact variant first, then a
    /// candidate without a variant, then a compatible one (the newest). Returns the index.
    public func bestMatch(in candidates: [Platform?]) -> Int? {
        var best: (index: Int, score: Int)?
        for (i, candidate) in candidates.enumerated() {
            guard let candidate else { continue }
            let s = score(candidate)
            if s > 0 && s > (best?.score ?? 0) { best = (i, s) }
        }
        return best?.index
    }

    /// 0: no match; higher is a better match.
    private func score(_ candidate: Platform) -> Int {
        guard os == candidate.os, architecture == candidate.architecture else { return 0 }
        let mine = effectiveVariant, theirs = candidate.effectiveVariant
        if mine == theirs { return 2000 }               // also arm64 == arm64/v8
        if candidate.variant == nil { return 1000 }     // the image did not say: assume it runs
        guard let mine, let theirs else { return mine == nil ? 100 : 0 }   // amd64 takes amd64/v3
        // An armv7 CPU runs armv6 and armv5 code; prefer the newest it can run.
        if architecture == "arm", let m = Platform.armLevel(mine), let t = Platform.armLevel(theirs), t < m {
            return 500 + t
        }
        return 0
    }

    private static func armLevel(_ variant: String) -> Int? {
        variant.hasPrefix("v") ? Int(variant.dropFirst()) : nil
    }

    enum CodingKeys: String, CodingKey {
        case os, architecture, variant
        case osVersion = "os.version"
        case osFeatures = "os.features"
    }
}
