/// The merged-tree file format this build reads and writes (`strata --version` shows it).
public let mergedTreeFormatVersion: UInt32 = MergedTreeFormat.version
