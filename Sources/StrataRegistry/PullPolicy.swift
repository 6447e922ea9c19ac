/// When a tag is asked of the registry (podman's `--pull`): `always` every time (a moved tag
/// is seen); `missing` only when this cache has not resolved it before (what it resolved last
/// is used as is: a warm start makes no request, and starts with the registry down);
/// `never` not at all (a tag this cache never resolved is an error). A digest reference asks
/// nothing of the registry under any policy once its manifest and config are kept.
public enum PullPolicy: String, Sendable, CaseIterable {
    case always, missing, never
}
