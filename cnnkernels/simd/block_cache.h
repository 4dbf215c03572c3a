/* The caching allocator for NumPy's array data (block_cache.c). */
#ifndef CNNK_BLOCK_CACHE_H
#define CNNK_BLOCK_CACHE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pythread.h>
#include <stddef.h>
#define NPY_NO_DEPRECATED_API NPY_1_22_API_VERSION
#include <numpy/ndarraytypes.h>

/* a lock taken without the GIL: NumPy may free an array's data in any thread */
typedef PyThread_type_lock cnnk_lock_t;
static inline int cnnk_lock_init(cnnk_lock_t *lock) { return (*lock = PyThread_allocate_lock()) != NULL ? 0 : -1; }
static inline void cnnk_lock(cnnk_lock_t *lock) { PyThread_acquire_lock(*lock, WAIT_LOCK); }
static inline void cnnk_unlock(cnnk_lock_t *lock) { PyThread_release_lock(*lock); }

int cnnk_block_cache_init(void);
PyDataMem_Handler *cnnk_block_cache_handler(void);
size_t cnnk_block_cache_release(void);
size_t cnnk_block_cache_bytes(void);
size_t cnnk_block_cache_set_limit(size_t limit);

#endif
