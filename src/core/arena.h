/* Per-request bump allocator (after h2o's mem pool): every string, JSON
 * buffer and row copy of one request lives here and dies in rf_arena_free. */
#ifndef RF_ARENA_H
#define RF_ARENA_H

#include <stdarg.h>
#include <stddef.h>

struct rf_arena_chunk;

struct rf_arena {
    struct rf_arena_chunk *head;
    size_t used;  /* bytes handed out, all chunks */
    size_t limit; /* 0 = unbounded; else allocations past it fail */
};

/* limit: total bytes this arena may hand out (0 = no limit). */
void rf_arena_init(struct rf_arena *a, size_t limit);
/* Frees every allocation at once; the arena may be reused after init. */
void rf_arena_free(struct rf_arena *a);

/* All return memory owned by the arena (valid until rf_arena_free), or NULL
 * when malloc fails or the limit is reached. Alignment: max_align_t. */
void *rf_arena_alloc(struct rf_arena *a, size_t n) __attribute__((warn_unused_result));
char *rf_arena_strndup(struct rf_arena *a, const char *s, size_t n);
char *rf_arena_strdup(struct rf_arena *a, const char *s);
char *rf_arena_printf(struct rf_arena *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
