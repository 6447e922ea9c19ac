import StrataIndex
import StrataRemote

extension MountStatus {
    /// A local mount's layers as the check of TOC-indexed layers against their streams sees them.
    func checking(_ check: LocalTOCCheck?) -> MountStatus {
        guard let check else { return self }
        var status = self
        for i in status.layers.indices where i < check.layers.count {
            let (state, error) = check.state(i)
            let (background, verification): (String, String) = switch state {
            case .notNeeded: ("not needed", "verified")
            case .pending: ("pending", "pending")
            case .verifying: ("running", "verifying")
            case .verified: ("done", "verified")
            case .failed: ("failed", "failed")
            case .off: ("off", "pending")
            }
            status.layers[i].background = background
            status.layers[i].verification = verification
            status.layers[i].error = error
        }
        return status
    }
}
