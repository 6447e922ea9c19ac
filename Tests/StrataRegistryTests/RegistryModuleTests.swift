import Testing
@testable import StrataRegistry
