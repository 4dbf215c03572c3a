/* A caching allocator for NumPy's array data (a PyDataMem_Handler, NumPy >= 1.22).

   A training step allocates and frees the same arrays every step. Through malloc, the freed megabytes at the
   heap's top are handed back to the OS at the step's end and faulted in again, page by page, in the next one
   (800 faults, 3.5 ms of a 12 ms tutorial-model step). Here a freed block of 64 KiB to 64 MiB is kept, by its
   size rounded up to a page, for the next array of that size; the cache holds at most `limit` bytes (a block
   that does not fit displaces the sizes used longest ago: a new model's sizes replace an old one's) and
   cnnk_block_cache_release gives it all back. Every block carries a header (its malloc pointer, its size),
   so free, realloc and the release need no table of live blocks. Data is 64-byte aligned. */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "block_cache.h"

#define ALIGNMENT 64
#define CACHE_MIN ((size_t)64 << 10)
#define CACHE_MAX ((size_t)64 << 20)
#define PAGE ((size_t)4096)
#define BINS 64 /* distinct cached sizes; a block of a 65th size goes back to malloc */

typedef struct {
    void *raw;    /* what malloc returned */
    size_t size;  /* usable bytes (a multiple of PAGE for cacheable blocks) */
} header_t;

typedef struct {
    size_t size;
    void *head; /* a free block's first bytes link to the next one of this size */
    size_t count;
    uint64_t used; /* the tick of its last put or get */
} bin_t;

static bin_t bins[BINS];
static size_t cached_bytes, cache_limit = (size_t)1 << 30;
static uint64_t tick;
static cnnk_lock_t lock;

static header_t *header_of(void *data) { return (header_t *)data - 1; }

static int cacheable(size_t size) { return size >= CACHE_MIN && size <= CACHE_MAX; }

static size_t usable_size(size_t size) { return cacheable(size) ? (size + PAGE - 1) / PAGE * PAGE : size; }

static void *from_system(size_t size, int zeroed) {
    /* room for the header and the alignment in front; data - raw lies in [ALIGNMENT, 2·ALIGNMENT) */
    if (size > SIZE_MAX - 2 * ALIGNMENT) return NULL;
    void *raw = zeroed ? calloc(1, size + 2 * ALIGNMENT) : malloc(size + 2 * ALIGNMENT);
    if (raw == NULL) return NULL;
    uintptr_t data = ((uintptr_t)raw + 2 * ALIGNMENT - 1) / ALIGNMENT * ALIGNMENT;
    header_t *header = header_of((void *)data);
    header->raw = raw;
    header->size = size;
    return (void *)data;
}

/* The bin holding blocks of `size`, or NULL. It and the three below run with the lock held. */
static bin_t *bin_of(size_t size) {
    for (int i = 0; i < BINS; i++)
        if (bins[i].size == size && bins[i].count > 0) return &bins[i];
    return NULL;
}

static bin_t *empty_bin(void) {
    for (int i = 0; i < BINS; i++)
        if (bins[i].count == 0) return &bins[i];
    return NULL;
}

/* Give every block of `bin` back to the system; returns their bytes. */
static size_t free_bin(bin_t *bin) {
    size_t freed = bin->count * bin->size;
    while (bin->head != NULL) {
        void *data = bin->head;
        bin->head = *(void **)data;
        free(header_of(data)->raw);
    }
    bin->count = 0;
    cached_bytes -= freed;
    return freed;
}

/* Free the bin used longest ago, other than `keep`; 0 if there is none. */
static int evict_oldest(const bin_t *keep) {
    bin_t *oldest = NULL;
    for (int i = 0; i < BINS; i++)
        if (&bins[i] != keep && bins[i].count > 0 && (oldest == NULL || bins[i].used < oldest->used))
            oldest = &bins[i];
    if (oldest == NULL) return 0;
    free_bin(oldest);
    return 1;
}

static void *from_cache(size_t size) {
    void *data = NULL;
    cnnk_lock(&lock);
    bin_t *bin = bin_of(size);
    if (bin != NULL) {
        data = bin->head;
        bin->head = *(void **)data;
        bin->count--;
        bin->used = ++tick;
        cached_bytes -= size;
    }
    cnnk_unlock(&lock);
    return data;
}

static int to_cache(void *data, size_t size) {
    int kept = 0;
    cnnk_lock(&lock);
    if (size <= cache_limit) {
        bin_t *bin = bin_of(size);
        while (cached_bytes + size > cache_limit && evict_oldest(bin))
            ; /* the sizes used longest ago make room */
        if (bin == NULL && (bin = empty_bin()) == NULL && evict_oldest(NULL)) bin = empty_bin();
        if (bin != NULL && cached_bytes + size <= cache_limit) {
            bin->size = size;
            *(void **)data = bin->head;
            bin->head = data;
            bin->count++;
            bin->used = ++tick;
            cached_bytes += size;
            kept = 1;
        }
    }
    cnnk_unlock(&lock);
    return kept;
}

static void *cache_malloc(void *ctx, size_t size) {
    (void)ctx;
    size_t usable = usable_size(size);
    void *data = cacheable(usable) ? from_cache(usable) : NULL;
    return data != NULL ? data : from_system(usable, 0);
}

static void *cache_calloc(void *ctx, size_t count, size_t item_size) {
    (void)ctx;
    if (item_size != 0 && count > SIZE_MAX / item_size) return NULL;
    size_t size = count * item_size, usable = usable_size(size);
    void *data = cacheable(usable) ? from_cache(usable) : NULL;
    if (data == NULL) return from_system(usable, 1);
    memset(data, 0, usable);
    return data;
}

static void cache_free(void *ctx, void *data, size_t size) {
    (void)ctx;
    (void)size; /* the header's size is the block's, whatever the array made of it */
    if (data == NULL) return;
    header_t *header = header_of(data);
    if (cacheable(header->size) && to_cache(data, header->size)) return;
    free(header->raw);
}

static void *cache_realloc(void *ctx, void *data, size_t size) {
    if (data == NULL) return cache_malloc(ctx, size);
    size_t old = header_of(data)->size;
    if (usable_size(size) == old) return data;
    void *moved = cache_malloc(ctx, size);
    if (moved == NULL) return NULL; /* the old block stays valid, as realloc's does */
    memcpy(moved, data, old < size ? old : size);
    cache_free(ctx, data, old);
    return moved;
}

static PyDataMem_Handler handler = {
    "cnnkernels_block_cache", 1, {NULL, cache_malloc, cache_calloc, cache_realloc, cache_free}};

PyDataMem_Handler *cnnk_block_cache_handler(void) { return &handler; }

int cnnk_block_cache_init(void) { return cnnk_lock_init(&lock); }

size_t cnnk_block_cache_release(void) {
    size_t released = 0;
    cnnk_lock(&lock);
    for (int i = 0; i < BINS; i++) released += free_bin(&bins[i]);
    cnnk_unlock(&lock);
    return released;
}

size_t cnnk_block_cache_bytes(void) {
    cnnk_lock(&lock);
    size_t bytes = cached_bytes;
    cnnk_unlock(&lock);
    return bytes;
}

size_t cnnk_block_cache_set_limit(size_t limit) {
    cnnk_lock(&lock);
    size_t previous = cache_limit;
    cache_limit = limit;
    while (cached_bytes > limit && evict_oldest(NULL))
        ; /* what it holds beyond the new limit, the sizes used longest ago first */
    cnnk_unlock(&lock);
    return previous;
}
