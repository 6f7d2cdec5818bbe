// The few allocator controls Swift's Glibc module does not expose (malloc.h is not part of
// it). One concept: what the C allocator holds, and giving it back.
#include "CAllocator.h"
// Any C library header defines __GLIBC__ under glibc (stddef.h comes from the compiler).
#include <stdlib.h>

#if defined(__GLIBC__)
#include <malloc.h>

size_t sessionfed_allocator_allocated_bytes(void) {
    struct mallinfo2 info = mallinfo2();
    return info.uordblks + info.hblkhd;
}

void sessionfed_allocator_trim(void) {
    malloc_trim(0);
}

void sessionfed_allocator_disable_fast_bins(void) {
    mallopt(M_MXFAST, 0);
}

void sessionfed_allocator_fix_mmap_threshold(size_t bytes) {
    mallopt(M_MMAP_THRESHOLD, (int)bytes);
}
#else
size_t sessionfed_allocator_allocated_bytes(void) { return 0; }
void sessionfed_allocator_trim(void) {}
void sessionfed_allocator_disable_fast_bins(void) {}
void sessionfed_allocator_fix_mmap_threshold(size_t bytes) { (void)bytes; }
#endif
