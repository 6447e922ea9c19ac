import Testing
@testable import StrataSeekable

@Suite struct SeekableModuleTests {
    @Test func moduleLinks() { #expect(String(describing: StrataSeekable.self) == "StrataSeekable") }
}
