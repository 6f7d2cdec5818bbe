#ifndef SESSIONFED_CALLOCATOR_H
#define SESSIONFED_CALLOCATOR_H

#include <stddef.h>

/// Bytes the C allocator has handed out and not had back (glibc: mallinfo2's in-use bytes
/// plus its mmapped blocks); 0 where the C library cannot say.
size_t sessionfed_allocator_allocated_bytes(void);

/// Returns the allocator's free pages to the system (glibc: malloc_trim); nothing elsewhere.
void sessionfed_allocator_trim(void);

/// Chunks this small are freed into per-size lists that are never merged with their
/// neighbours until the next large request: after a mass release they keep whole pages
/// resident. Turning them off (glibc: M_MXFAST 0) lets freed session memory coalesce.
void sessionfed_allocator_disable_fast_bins(void);

/// Blocks of at least `bytes` get pages of their own, given back when freed. glibc starts at
/// 128 KiB but raises the threshold each time such a block is freed, so a keyspace's growing
/// dictionaries end up in the heap, where the few small allocations placed after them pin
/// their pages once they are freed. Setting it (glibc: M_MMAP_THRESHOLD) stops that raise.
void sessionfed_allocator_fix_mmap_threshold(size_t bytes);

#endif
