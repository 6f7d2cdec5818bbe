#ifndef CLIBFUZZER_H
#define CLIBFUZZER_H

#include <stddef.h>
#include <stdint.h>

/// libFuzzer's driver, for programs with a `main` of their own (LLVM 11 and later). SwiftPM
/// renames an executable target's entry point and points `main` at it, so libFuzzer's own
/// `main` is never linked: the fuzz targets call this from theirs when built with -DFUZZING.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif
