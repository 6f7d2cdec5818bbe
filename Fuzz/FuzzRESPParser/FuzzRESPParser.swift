import FuzzChecks

/// libFuzzer's entry point: one input through the request parser's properties (`FuzzTarget`).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRESPParser(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    FuzzTarget.run(data, size, check: RESPRequestParserProperty.check)
}

/// libFuzzer's driver when built for fuzzing, a replay of the files it is given otherwise.
@main enum FuzzRESPParserMain {
    static func main() {
        FuzzTarget.main(entry: fuzzRESPParser, check: RESPRequestParserProperty.check)
    }
}
