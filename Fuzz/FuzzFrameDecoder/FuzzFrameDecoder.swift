import FuzzChecks

/// libFuzzer's entry point: one input through the frame decoder's properties (`FuzzTarget`).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFrameDecoder(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    FuzzTarget.run(data, size, check: FrameDecoderProperty.check)
}

/// libFuzzer's driver when built for fuzzing, a replay of the files it is given otherwise.
@main enum FuzzFrameDecoderMain {
    static func main() {
        FuzzTarget.main(entry: fuzzFrameDecoder, check: FrameDecoderProperty.check)
    }
}
