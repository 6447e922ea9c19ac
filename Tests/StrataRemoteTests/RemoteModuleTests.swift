import Testing
@testable import StrataRemote
