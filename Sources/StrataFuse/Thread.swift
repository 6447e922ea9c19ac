#if canImport(Glibc)
import Glibc
#endif

/// A joinable POSIX thread running a closure. libfuse is built on pthreads and signal masks
/// are per thread, so the server manages its helper threads directly.
struct Thread {
    let id: pthread_t

    private final class Body {
        let run: () -> Void
        init(_ run: @escaping () -> Void) { self.run = run }
    }

    /// Starts a thread; it inherits the caller's signal mask.
    static func start(_ body: @escaping @Sendable () -> Void) -> Thread {
        let context = Unmanaged.passRetained(Body(body)).toOpaque()
        var id = pthread_t()
        let rc = pthread_create(&id, nil, { context in
            Unmanaged<Body>.fromOpaque(context!).takeRetainedValue().run()
            return nil
        }, context)
        precondition(rc == 0, "pthread_create: \(rc)")
        return Thread(id: id)
    }

    func join() { pthread_join(id, nil) }
}
