import FuzzChecks

/// libFuzzer's entry point: one input through the topology parser's properties (`FuzzTarget`).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTopologyParser(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    FuzzTarget.run(data, size, check: TopologyParserProperty.check)
}

/// libFuzzer's driver when built for fuzzing, a replay of the files it is given otherwise.
@main enum FuzzTopologyParserMain {
    static func main() {
        FuzzTarget.main(entry: fuzzTopologyParser, check: TopologyParserProperty.check)
    }
}
