/*
 * Cross-language check of the wire contract: decodes a sessionfed.v1.DeltaBatch with
 * protobuf-c (code generated from Proto/ by protoc-c), prints what it found, and encodes it
 * again. Usage: roundtrip IN OUT. Exit status 1 on any decoding or I/O error.
 */
#include <stdio.h>
#include <stdlib.h>

#include "sessionfed/v1/frames.pb-c.h"

static unsigned char *read_all(const char *path, size_t *length) {
    FILE *file = fopen(path, "rb");
    if (!file) { perror(path); return NULL; }
    size_t capacity = 4096, used = 0;
    unsigned char *buffer = malloc(capacity);
    size_t n;
    while (buffer && (n = fread(buffer + used, 1, capacity - used, file)) > 0) {
        used += n;
        if (used == capacity) {
            capacity *= 2;
            buffer = realloc(buffer, capacity);
        }
    }
    fclose(file);
    *length = used;
    return buffer;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s IN OUT\n", argv[0]);
        return 2;
    }
    size_t length = 0;
    unsigned char *input = read_all(argv[1], &length);
    if (!input) return 1;

    Sessionfed__V1__DeltaBatch *batch = sessionfed__v1__delta_batch__unpack(NULL, length, input);
    free(input);
    if (!batch) {
        fprintf(stderr, "protobuf-c could not decode the DeltaBatch\n");
        return 1;
    }
    size_t operations = 0, context_dots = 0;
    for (size_t i = 0; i < batch->n_deltas; i++) {
        Sessionfed__V1__Delta *delta = batch->deltas[i];
        operations += delta->n_operations;
        if (delta->context && delta->context->vector) {
            context_dots += delta->context->vector->n_entries + delta->context->n_cloud;
        }
    }
    printf("origin=%u sender=%u partition=%u first_sequence=%llu deltas=%zu operations=%zu context_entries=%zu\n",
           batch->origin_site, batch->sender_site, batch->partition,
           (unsigned long long)batch->first_sequence, batch->n_deltas, operations, context_dots);

    size_t packed_size = sessionfed__v1__delta_batch__get_packed_size(batch);
    unsigned char *output = malloc(packed_size ? packed_size : 1);
    size_t written = sessionfed__v1__delta_batch__pack(batch, output);
    sessionfed__v1__delta_batch__free_unpacked(batch, NULL);

    FILE *file = fopen(argv[2], "wb");
    if (!file || fwrite(output, 1, written, file) != written) {
        perror(argv[2]);
        return 1;
    }
    fclose(file);
    free(output);
    return 0;
}
