import Testing
@testable import StrataTar
