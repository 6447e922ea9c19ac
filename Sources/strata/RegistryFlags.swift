import StrataSystem
import StrataRegistry
#if canImport(Glibc)
import Glibc
#endif

/// skopeo's registry options, taken by every command that takes IMAGE: `--tls-verify=false`,
/// `--authfile FILE`, `--creds USER[:PASS]`. They matter only for a `docker://` IMAGE.
struct RegistryFlags {
    static let valued: Set<String> = ["--tls-verify", "--authfile", "--creds", "--pull"]


    /// The help lines, as each command lists them.
    static let help = """
      --tls-verify=false plain HTTP, or HTTPS with an untrusted certificate, for a docker:// IMAGE
      --authfile FILE    registry credentials (default: $XDG_RUNTIME_DIR/containers/auth.json, then
                         ~/.docker/config.json)
      --creds USER[:PASS]
                         registry credentials, given directly
    """

    /// The help of `--pull`, for the commands that open one IMAGE (not `store`, which resolves
    /// what podman asks for every time).
    static let pullHelp = """
      --pull=P           when a docker:// tag is asked of the registry, as podman's --pull:
                         always (default: every time, so a moved tag is seen), missing (only if
                         this cache never resolved it: a warm start asks nothing and works with
                         the registry down), never (an error if this cache never resolved it)
    """

    /// The daemon gets --creds through its environment, not its command line (`ps` shows that).
    static let credsEnvironment = "STRATA_REGISTRY_CREDS"

    var tlsVerify = true
    var authfile: String?
    var creds: String?
    var pull = PullPolicy.always

    init(_ a: Arguments) throws {
        if let value = a["--tls-verify"] {
            switch value {
            case "true": tlsVerify = true
            case "false": tlsVerify = false
            default: throw CLIError("--tls-verify=\(value): not true or false", usage: true)
            }
        }
        if let value = a["--pull"] {
            guard let policy = PullPolicy(rawValue: value) else {
                throw CLIError("--pull=\(value): not always, missing or never", usage: true)
            }
            pull = policy
        }
        authfile = a["--authfile"].map(FileIO.absolute)
        creds = a["--creds"]
        if creds == nil, let env = getenv(Self.credsEnvironment), env.pointee != 0 { creds = String(cString: env) }
    }

    var options: RegistryOptions {
        var o = RegistryOptions()
        o.tlsVerify = tlsVerify
        o.authfile = authfile
        o.creds = creds
        return o
    }

    /// The options passed on to a `strata mount` this command runs (not --creds: see `credsEnvironment`).
    var arguments: [String] {
        var args: [String] = []
        if !tlsVerify { args.append("--tls-verify=false") }
        if pull != .always { args.append("--pull=\(pull.rawValue)") }
        if let authfile { args += ["--authfile", authfile] }
        return args
    }

    /// Puts --creds where a `strata mount` started from here finds it.
    func exportCreds() {
        if let creds { setenv(Self.credsEnvironment, creds, 1) }
    }

    /// skopeo accepts a bare `--tls-verify` (true): the parser wants a value, so give it one.
    static func normalize(_ args: ArraySlice<String>) -> ArraySlice<String> {
        ArraySlice(args.map { $0 == "--tls-verify" ? "--tls-verify=true" : $0 })
    }
}
