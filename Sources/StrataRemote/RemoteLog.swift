/// Where this module's log lines go (the mount daemon's log; stderr for a command).
public struct RemoteLog: Sendable {
    public var error: @Sendable (String) -> Void
    public var warn: @Sendable (String) -> Void
    public var info: @Sendable (String) -> Void

    public init(error: @escaping @Sendable (String) -> Void, warn: @escaping @Sendable (String) -> Void,
                info: @escaping @Sendable (String) -> Void) {
        self.error = error; self.warn = warn; self.info = info
    }
}
